WITH "t7" AS (
  SELECT
    *
  FROM "events" AS "t3"
  WHERE
    "t3"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 3, 1, 23, 0, 0.0, 'UTC')
    AND "t3"."timestamp" < MAKE_TIMESTAMPTZ(2026, 3, 29, 22, 0, 0.0, 'UTC')
    AND "t3"."type" = 'track'
    AND "t3"."event" IN ('purchase_complete')
), "t17" AS (
  SELECT
    "t6"."_p" AS "_period",
    "t14"."_d0",
    "t14"."_v"
  FROM (
    SELECT
      "t11"."_src",
      "t11"."_d0",
      COUNT(*) AS "_v"
    FROM (
      SELECT
        "t9"."_local",
        "t9"."_d0",
        DATE_TRUNC('WEEK', "t9"."_local") AS "_src"
      FROM (
        SELECT
          TIMEZONE('Europe/Berlin', "t8"."timestamp") AS "_local",
          "t8"."context" ->> '$.os.name' AS "_d0"
        FROM "t7" AS "t8"
      ) AS "t9"
    ) AS "t11"
    GROUP BY
      1,
      2
  ) AS "t14"
  INNER JOIN "spine_0" AS "t6"
    ON "t14"."_src" = "t6"."_s"
), "t19" AS (
  SELECT
    "t5"."_p" AS "_period",
    "t16"."_d0",
    "t16"."_v"
  FROM (
    SELECT
      "t12"."_src",
      "t12"."_d0",
      SUM("t12"."_v") AS "_v"
    FROM (
      SELECT
        "t10"."_local",
        "t10"."_d0",
        "t10"."_v",
        DATE_TRUNC('WEEK', "t10"."_local") AS "_src"
      FROM (
        SELECT
          TIMEZONE('Europe/Berlin', "t8"."timestamp") AS "_local",
          "t8"."context" ->> '$.os.name' AS "_d0",
          CAST("t8"."properties" ->> '$.revenue' AS DOUBLE) AS "_v"
        FROM "t7" AS "t8"
      ) AS "t10"
    ) AS "t12"
    GROUP BY
      1,
      2
  ) AS "t16"
  INNER JOIN "spine_1" AS "t5"
    ON "t16"."_src" = "t5"."_s"
)
SELECT
  "t29"."_period",
  "t29"."_d0",
  COALESCE("t29"."_c0", 0) AS "_m0",
  COALESCE("t29"."_c0", 0) / NULLIF(CAST(COALESCE("t29"."_c1", 0) AS DOUBLE), 0) AS "_m1"
FROM (
  SELECT
    "t4"."_period",
    "t28"."_d0",
    "t27"."_c0",
    "t23"."_c1"
  FROM "spine_2" AS "t4"
  CROSS JOIN (
    SELECT
      *
    FROM (
      SELECT
        "t22"."_d0"
      FROM "t19" AS "t22"
    ) AS "t24"
    UNION
    SELECT
      *
    FROM (
      SELECT
        "t18"."_d0"
      FROM "t17" AS "t18"
    ) AS "t20"
  ) AS "t28"
  LEFT OUTER JOIN (
    SELECT
      "t22"."_period" AS "_jp",
      "t22"."_d0" AS "_j_d0",
      "t22"."_v" AS "_c0"
    FROM "t19" AS "t22"
  ) AS "t27"
    ON "t4"."_period" = "t27"."_jp" AND "t28"."_d0" IS NOT DISTINCT FROM "t27"."_j_d0"
  LEFT OUTER JOIN (
    SELECT
      "t18"."_period" AS "_jp",
      "t18"."_d0" AS "_j_d0",
      "t18"."_v" AS "_c1"
    FROM "t17" AS "t18"
  ) AS "t23"
    ON "t4"."_period" = "t23"."_jp" AND "t28"."_d0" IS NOT DISTINCT FROM "t23"."_j_d0"
) AS "t29"
ORDER BY
  "t29"."_period" ASC,
  "t29"."_d0" ASC
