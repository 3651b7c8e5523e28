SELECT
  "t29"."_period",
  COALESCE("t29"."_c0", 0) AS "_m0",
  (
    COALESCE("t29"."_c1", 0) - COALESCE("t29"."_c2", 0)
  ) / NULLIF(COALESCE("t29"."_c2", 0), 0) AS "_m1"
FROM (
  SELECT
    "t4"."_period",
    "t21"."_c0",
    "t25"."_c1",
    "t28"."_c2"
  FROM "spine_0" AS "t4"
  LEFT OUTER JOIN (
    SELECT
      "t18"."_period" AS "_jp",
      "t18"."_c0"
    FROM (
      SELECT
        "t17"."_period",
        COUNT(DISTINCT "t17"."_v0") AS "_c0"
      FROM (
        SELECT
          "t6"."_p" AS "_period",
          "t15"."_v0"
        FROM (
          SELECT DISTINCT
            "t10"."_v0",
            DATE_TRUNC('DAY', "t10"."_local") AS "_local"
          FROM (
            SELECT
              TIMEZONE('Europe/Berlin', "t8"."timestamp") AS "_local",
              COALESCE("t8"."user_id", "t8"."anonymous_id") AS "_v0"
            FROM (
              SELECT
                *
              FROM "events" AS "t3"
              WHERE
                "t3"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 2, 22, 23, 0, 0.0, 'UTC')
                AND "t3"."timestamp" < MAKE_TIMESTAMPTZ(2026, 3, 7, 23, 0, 0.0, 'UTC')
                AND "t3"."type" IN ('track', 'page', 'screen')
            ) AS "t8"
          ) AS "t10"
        ) AS "t15"
        INNER JOIN "spine_1" AS "t6"
          ON "t15"."_local" >= "t6"."_lo" AND "t15"."_local" < "t6"."_hi"
      ) AS "t17"
      GROUP BY
        1
    ) AS "t18"
  ) AS "t21"
    ON "t4"."_period" = "t21"."_jp"
  LEFT OUTER JOIN (
    SELECT
      "t20"."_src" AS "_jp",
      "t20"."_c1"
    FROM (
      SELECT
        "t14"."_src",
        CASE
          WHEN FSUM(ABS("t14"."_v0")) BETWEEN 1e-08 AND 1e+300
          THEN CAST(ROUND(
            FSUM("t14"."_v0"),
            CAST(14 - CAST(FLOOR(LOG(FSUM(ABS("t14"."_v0")))) AS BIGINT) AS INT)
          ) AS DOUBLE)
          ELSE FSUM("t14"."_v0")
        END AS "_c1"
      FROM (
        SELECT
          "t11"."_local",
          "t11"."_v0",
          DATE_TRUNC('DAY', "t11"."_local") AS "_src"
        FROM (
          SELECT
            TIMEZONE('Europe/Berlin', "t7"."timestamp") AS "_local",
            CAST("t7"."properties" ->> '$.revenue' AS DOUBLE) AS "_v0"
          FROM (
            SELECT
              *
            FROM "events" AS "t3"
            WHERE
              "t3"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 2, 28, 23, 0, 0.0, 'UTC')
              AND "t3"."timestamp" < MAKE_TIMESTAMPTZ(2026, 3, 7, 23, 0, 0.0, 'UTC')
              AND "t3"."type" = 'track'
              AND "t3"."event" IN ('purchase_complete')
          ) AS "t7"
        ) AS "t11"
      ) AS "t14"
      GROUP BY
        1
    ) AS "t20"
  ) AS "t25"
    ON "t4"."_period" = "t25"."_jp"
  LEFT OUTER JOIN (
    SELECT
      "t26"."_period" AS "_jp",
      "t26"."_c2"
    FROM (
      SELECT
        "t5"."_p" AS "_period",
        "t23"."_c2"
      FROM (
        SELECT
          "t16"."_src",
          CASE
            WHEN FSUM(ABS("t16"."_v0")) BETWEEN 1e-08 AND 1e+300
            THEN CAST(ROUND(
              FSUM("t16"."_v0"),
              CAST(14 - CAST(FLOOR(LOG(FSUM(ABS("t16"."_v0")))) AS BIGINT) AS INT)
            ) AS DOUBLE)
            ELSE FSUM("t16"."_v0")
          END AS "_c2"
        FROM (
          SELECT
            "t12"."_local",
            "t12"."_v0",
            DATE_TRUNC('DAY', "t12"."_local") AS "_src"
          FROM (
            SELECT
              TIMEZONE('Europe/Berlin', "t9"."timestamp") AS "_local",
              CAST("t9"."properties" ->> '$.revenue' AS DOUBLE) AS "_v0"
            FROM (
              SELECT
                *
              FROM "events" AS "t3"
              WHERE
                "t3"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 2, 21, 23, 0, 0.0, 'UTC')
                AND "t3"."timestamp" < MAKE_TIMESTAMPTZ(2026, 2, 28, 23, 0, 0.0, 'UTC')
                AND "t3"."type" = 'track'
                AND "t3"."event" IN ('purchase_complete')
            ) AS "t9"
          ) AS "t12"
        ) AS "t16"
        GROUP BY
          1
      ) AS "t23"
      INNER JOIN "spine_2" AS "t5"
        ON "t23"."_src" = "t5"."_s"
    ) AS "t26"
  ) AS "t28"
    ON "t4"."_period" = "t28"."_jp"
) AS "t29"
ORDER BY
  "t29"."_period" ASC
