WITH "t10" AS (
  SELECT
    "t4"."_p" AS "_period",
    "t9"."_d0",
    "t9"."_c0",
    "t9"."_c1"
  FROM (
    SELECT
      "t7"."_src",
      "t7"."_d0",
      SUM("t7"."_v0") FILTER(WHERE
        "t7"."_f0") AS "_c0",
      COUNT(*) FILTER(WHERE
        "t7"."_f1") AS "_c1"
    FROM (
      SELECT
        "t6"."_local",
        "t6"."_d0",
        "t6"."_v0",
        "t6"."_f0",
        "t6"."_f1",
        DATE_TRUNC('WEEK', "t6"."_local") AS "_src"
      FROM (
        SELECT
          TIMEZONE('Europe/Berlin', "t5"."timestamp") AS "_local",
          "t5"."context" ->> '$.os.name' AS "_d0",
          CAST("t5"."properties" ->> '$.revenue' AS DOUBLE) AS "_v0",
          COALESCE(TRUE, FALSE) AS "_f0",
          COALESCE(TRUE, FALSE) AS "_f1"
        FROM (
          SELECT
            *
          FROM "events" AS "t2"
          WHERE
            "t2"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 3, 1, 23, 0, 0.0, 'UTC')
            AND "t2"."timestamp" < MAKE_TIMESTAMPTZ(2026, 3, 29, 22, 0, 0.0, 'UTC')
            AND "t2"."type" = 'track'
            AND "t2"."event" IN ('purchase_complete')
        ) AS "t5"
      ) AS "t6"
    ) AS "t7"
    GROUP BY
      1,
      2
  ) AS "t9"
  INNER JOIN "spine_0" AS "t4"
    ON "t9"."_src" = "t4"."_s"
)
SELECT
  "t16"."_period",
  "t16"."_d0",
  COALESCE("t16"."_c0", 0) AS "_m0",
  COALESCE("t16"."_c0", 0) / NULLIF(CAST(COALESCE("t16"."_c1", 0) AS DOUBLE), 0) AS "_m1"
FROM (
  SELECT
    "t3"."_period",
    "t14"."_d0",
    "t15"."_c0",
    "t15"."_c1"
  FROM "spine_1" AS "t3"
  CROSS JOIN (
    SELECT DISTINCT
      "t11"."_d0"
    FROM "t10" AS "t11"
  ) AS "t14"
  LEFT OUTER JOIN (
    SELECT
      "t11"."_period" AS "_jp",
      "t11"."_d0" AS "_j_d0",
      "t11"."_c0",
      "t11"."_c1"
    FROM "t10" AS "t11"
  ) AS "t15"
    ON "t3"."_period" = "t15"."_jp" AND "t14"."_d0" IS NOT DISTINCT FROM "t15"."_j_d0"
) AS "t16"
ORDER BY
  "t16"."_period" ASC,
  "t16"."_d0" ASC
