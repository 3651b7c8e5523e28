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
    "t15"."_c0",
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
          "t9"."_v0",
          "t9"."_local",
          DATE_TRUNC('DAY', "t9"."_local") AS "_src"
        FROM (
          SELECT DISTINCT
            "t6"."_v0",
            DATE_TRUNC('DAY', "t6"."_local") AS "_local"
          FROM (
            SELECT
              TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local",
              COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_v0"
            FROM "t3" AS "t5"
          ) AS "t6"
        ) AS "t9"
      ) AS "t11"
      GROUP BY
        1
    ) AS "t13"
  ) AS "t15"
    ON "t2"."_period" = "t15"."_jp"
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
          "t16"."_v0",
          "t16"."_local",
          DATE_TRUNC('DAY', "t16"."_local") AS "_src"
        FROM (
          SELECT DISTINCT
            "t12"."_v0",
            DATE_TRUNC('DAY', "t12"."_local") AS "_local"
          FROM (
            SELECT
              "t10"."_local",
              "t10"."_v0",
              "t10"."_ts",
              "t10"."_mid",
              "t10"."_ent",
              "t10"."_kind",
              "t10"."_cts",
              MIN("t10"."_cts") OVER (
                PARTITION BY "t10"."_ent"
                ORDER BY "t10"."_ts" ASC, "t10"."_kind" DESC NULLS LAST
                ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING
              ) AS "_next",
              SUM("t10"."_kind") OVER (
                PARTITION BY "t10"."_ent", "t10"."_ts"
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
              ) AS "_at",
              SUM("t10"."_kind") OVER (
                PARTITION BY "t10"."_ent", "t10"."_ts", "t10"."_mid"
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
              ) AS "_own"
            FROM (
              SELECT
                *
              FROM (
                SELECT
                  "t7"."_local",
                  "t7"."_v0",
                  "t7"."_ts",
                  "t7"."_mid",
                  "t7"."_ent",
                  0 AS "_kind",
                  CAST(NULL AS TIMESTAMPTZ(6)) AS "_cts"
                FROM (
                  SELECT
                    TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local",
                    COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_v0",
                    "t5"."timestamp" AS "_ts",
                    "t5"."message_id" AS "_mid",
                    COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_ent"
                  FROM "t3" AS "t5"
                ) AS "t7"
              ) AS "t8"
              UNION ALL
              SELECT
                *
              FROM (
                SELECT
                  CAST(NULL AS TIMESTAMP) AS "_local",
                  CAST(NULL AS VARCHAR) AS "_v0",
                  "t1"."timestamp" AS "_ts",
                  "t1"."message_id" AS "_mid",
                  COALESCE("t1"."user_id", "t1"."anonymous_id") AS "_ent",
                  1 AS "_kind",
                  "t1"."timestamp" AS "_cts"
                FROM "events" AS "t1"
                WHERE
                  "t1"."timestamp" >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMPTZ)
                  AND "t1"."timestamp" < CAST('2026-03-08T00:00:00+00:00' AS TIMESTAMPTZ)
                  AND "t1"."type" = 'track'
                  AND "t1"."event" IN ('purchase_complete')
                  AND COALESCE("t1"."user_id", "t1"."anonymous_id") IS NOT NULL
                  AND "t1"."message_id" IS NOT NULL
              ) AS "t4"
            ) AS "t10"
          ) AS "t12"
          WHERE
            "t12"."_kind" = 0
            AND "t12"."_ent" IS NOT NULL
            AND "t12"."_mid" IS NOT NULL
            AND (
              (
                "t12"."_at" > "t12"."_own"
              )
              OR (
                "t12"."_next" <= (
                  "t12"."_ts" + INTERVAL '3600 SECOND'
                )
              )
            )
        ) AS "t16"
      ) AS "t17"
      GROUP BY
        1
    ) AS "t18"
  ) AS "t20"
    ON "t2"."_period" = "t20"."_jp"
) AS "t21"
ORDER BY
  "t21"."_period" ASC
