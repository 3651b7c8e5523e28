WITH "t3" AS (
  SELECT
    *
  FROM "events" AS "t1"
  WHERE
    "t1"."timestamp" >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMPTZ)
    AND "t1"."timestamp" < CAST('2026-03-07T23:00:00+00:00' AS TIMESTAMPTZ)
    AND "t1"."type" = 'track'
    AND "t1"."event" IN ('checkout_start')
)
SELECT
  "t21"."_period",
  CAST(COALESCE("t21"."_c1", 0) AS DOUBLE PRECISION) / NULLIF(CAST(COALESCE("t21"."_c0", 0) AS DOUBLE PRECISION), 0) AS "_m0"
FROM (
  SELECT
    "t2"."_period",
    "t16"."_c0",
    "t20"."_c1"
  FROM "spine_0" AS "t2"
  LEFT OUTER JOIN (
    SELECT
      "t13"."_src" AS "_jp",
      "t13"."_c0"
    FROM (
      SELECT
        "t11"."_src",
        COUNT(DISTINCT "t11"."_v0") AS "_c0"
      FROM (
        SELECT
          "t10"."_v0",
          "t10"."_local",
          DATE_TRUNC('DAY', "t10"."_local") AS "_src"
        FROM (
          SELECT DISTINCT
            "t7"."_v0",
            DATE_TRUNC('DAY', "t7"."_local") AS "_local"
          FROM (
            SELECT
              TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local",
              COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_v0"
            FROM "t3" AS "t5"
          ) AS "t7"
        ) AS "t10"
      ) AS "t11"
      GROUP BY
        1
    ) AS "t13"
  ) AS "t16"
    ON "t2"."_period" = "t16"."_jp"
  LEFT OUTER JOIN (
    SELECT
      "t18"."_src" AS "_jp",
      "t18"."_c1"
    FROM (
      SELECT
        "t17"."_src",
        COUNT(DISTINCT "t17"."_v0") AS "_c1"
      FROM (
        SELECT
          "t14"."_v0",
          "t14"."_local",
          DATE_TRUNC('DAY', "t14"."_local") AS "_src"
        FROM (
          SELECT DISTINCT
            "t12"."_v0",
            DATE_TRUNC('DAY', "t12"."_local") AS "_local"
          FROM (
            SELECT
              "t9"."_local",
              "t9"."_v0"
            FROM (
              SELECT
                TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local",
                COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_v0",
                "t5"."timestamp" AS "_ts",
                "t5"."message_id" AS "_mid",
                COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_ent"
              FROM "t3" AS "t5"
            ) AS "t9"
            WHERE
              EXISTS(
                SELECT
                  1
                FROM (
                  SELECT
                    COALESCE("t1"."user_id", "t1"."anonymous_id") AS "_cent",
                    "t1"."timestamp" AS "_cts",
                    "t1"."message_id" AS "_cmid"
                  FROM "events" AS "t1"
                  WHERE
                    "t1"."timestamp" >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMPTZ)
                    AND "t1"."timestamp" < CAST('2026-03-08T00:00:00+00:00' AS TIMESTAMPTZ)
                    AND "t1"."type" = 'track'
                    AND "t1"."event" IN ('purchase_complete')
                ) AS "t6"
                WHERE
                  "t9"."_ent" = "t6"."_cent"
                  AND "t6"."_cts" >= "t9"."_ts"
                  AND "t6"."_cts" <= (
                    "t9"."_ts" + INTERVAL '3600 SECOND'
                  )
                  AND "t9"."_mid" <> "t6"."_cmid"
              )
          ) AS "t12"
        ) AS "t14"
      ) AS "t17"
      GROUP BY
        1
    ) AS "t18"
  ) AS "t20"
    ON "t2"."_period" = "t20"."_jp"
) AS "t21"
ORDER BY
  "t21"."_period" ASC
