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
  "t19"."_period",
  CAST(COALESCE("t19"."_c1", 0) AS DOUBLE PRECISION) / NULLIF(CAST(COALESCE("t19"."_c0", 0) AS DOUBLE PRECISION), 0) AS "_m0"
FROM (
  SELECT
    "t2"."_period",
    "t14"."_c0",
    "t18"."_c1"
  FROM "spine_0" AS "t2"
  LEFT OUTER JOIN (
    SELECT
      "t11"."_src" AS "_jp",
      "t11"."_c0"
    FROM (
      SELECT
        "t10"."_src",
        COUNT(*) AS "_c0"
      FROM (
        SELECT
          "t7"."_local",
          DATE_TRUNC('DAY', "t7"."_local") AS "_src"
        FROM (
          SELECT
            TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local"
          FROM "t3" AS "t5"
        ) AS "t7"
      ) AS "t10"
      GROUP BY
        1
    ) AS "t11"
  ) AS "t14"
    ON "t2"."_period" = "t14"."_jp"
  LEFT OUTER JOIN (
    SELECT
      "t16"."_src" AS "_jp",
      "t16"."_c1"
    FROM (
      SELECT
        "t15"."_src",
        COUNT(*) AS "_c1"
      FROM (
        SELECT
          "t12"."_local",
          DATE_TRUNC('DAY', "t12"."_local") AS "_src"
        FROM (
          SELECT
            "t9"."_local"
          FROM (
            SELECT
              TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local",
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
      ) AS "t15"
      GROUP BY
        1
    ) AS "t16"
  ) AS "t18"
    ON "t2"."_period" = "t18"."_jp"
) AS "t19"
ORDER BY
  "t19"."_period" ASC
