WITH "t6" AS (
  SELECT
    "t5"."_src",
    "t5"."_d0",
    CASE
      WHEN FSUM(ABS("t5"."_v0")) FILTER(WHERE
        "t5"."_f0") BETWEEN 1e-08 AND 1e+300
      THEN CAST(ROUND(
        FSUM("t5"."_v0") FILTER(WHERE
          "t5"."_f0"),
        CAST(14 - CAST(FLOOR(LOG(FSUM(ABS("t5"."_v0")) FILTER(WHERE
          "t5"."_f0"))) AS BIGINT) AS INT)
      ) AS DOUBLE)
      ELSE FSUM("t5"."_v0") FILTER(WHERE
        "t5"."_f0")
    END AS "_c0",
    COUNT(*) FILTER(WHERE
      "t5"."_f1") AS "_c1"
  FROM (
    SELECT
      "t4"."_local",
      "t4"."_d0",
      "t4"."_v0",
      "t4"."_f0",
      "t4"."_f1",
      DATE_TRUNC('WEEK', "t4"."_local") AS "_src"
    FROM (
      SELECT
        TIMEZONE('Europe/Berlin', "t3"."timestamp") AS "_local",
        "t3"."context" ->> '$.os.name' AS "_d0",
        CAST("t3"."properties" ->> '$.revenue' AS DOUBLE) AS "_v0",
        COALESCE(TRUE, FALSE) AS "_f0",
        COALESCE(TRUE, FALSE) AS "_f1"
      FROM (
        SELECT
          *
        FROM "events" AS "t1"
        WHERE
          "t1"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 3, 1, 23, 0, 0.0, 'UTC')
          AND "t1"."timestamp" < MAKE_TIMESTAMPTZ(2026, 3, 29, 22, 0, 0.0, 'UTC')
          AND "t1"."type" = 'track'
          AND "t1"."event" IN ('purchase_complete')
      ) AS "t3"
    ) AS "t4"
  ) AS "t5"
  GROUP BY
    1,
    2
)
SELECT
  "t12"."_period",
  "t12"."_d0",
  COALESCE("t12"."_c0", 0) AS "_m0",
  COALESCE("t12"."_c0", 0) / NULLIF(CAST(COALESCE("t12"."_c1", 0) AS DOUBLE), 0) AS "_m1"
FROM (
  SELECT
    "t2"."_period",
    "t10"."_d0",
    "t11"."_c0",
    "t11"."_c1"
  FROM "spine_0" AS "t2"
  CROSS JOIN (
    SELECT DISTINCT
      "t7"."_d0"
    FROM "t6" AS "t7"
  ) AS "t10"
  LEFT OUTER JOIN (
    SELECT
      "t7"."_src" AS "_jp",
      "t7"."_d0" AS "_j_d0",
      "t7"."_c0",
      "t7"."_c1"
    FROM "t6" AS "t7"
  ) AS "t11"
    ON "t2"."_period" = "t11"."_jp" AND "t10"."_d0" IS NOT DISTINCT FROM "t11"."_j_d0"
) AS "t12"
ORDER BY
  "t12"."_period" ASC,
  "t12"."_d0" ASC
