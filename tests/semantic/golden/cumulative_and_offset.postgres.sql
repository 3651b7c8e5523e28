SELECT
  "t29"."_period",
  COALESCE("t29"."_c0", 0) AS "_m0",
  CAST((
    COALESCE("t29"."_c1", 0) - COALESCE("t29"."_c2", 0)
  ) AS DOUBLE PRECISION) / NULLIF(COALESCE("t29"."_c2", 0), 0) AS "_m1"
FROM (
  SELECT
    "t4"."_period",
    "t25"."_c0",
    "t23"."_c1",
    "t28"."_c2"
  FROM "spine_0" AS "t4"
  LEFT OUTER JOIN (
    SELECT
      "t20"."_period" AS "_jp",
      "t20"."_c0"
    FROM (
      SELECT
        "t17"."_period",
        COUNT(DISTINCT "t17"."_v0") AS "_c0"
      FROM (
        SELECT
          "t6"."_p" AS "_period",
          "t14"."_v0"
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
                "t3"."timestamp" >= CAST('2026-02-22T23:00:00+00:00' AS TIMESTAMPTZ)
                AND "t3"."timestamp" < CAST('2026-03-07T23:00:00+00:00' AS TIMESTAMPTZ)
                AND "t3"."type" IN ('track', 'page', 'screen')
            ) AS "t8"
          ) AS "t10"
        ) AS "t14"
        INNER JOIN "spine_1" AS "t6"
          ON "t14"."_local" >= "t6"."_lo" AND "t14"."_local" < "t6"."_hi"
      ) AS "t17"
      GROUP BY
        1
    ) AS "t20"
  ) AS "t25"
    ON "t4"."_period" = "t25"."_jp"
  LEFT OUTER JOIN (
    SELECT
      "t18"."_src" AS "_jp",
      "t18"."_c1"
    FROM (
      SELECT
        "t15"."_src",
        CAST(SUM(CAST("t15"."_v0" AS DECIMAL)) AS DOUBLE PRECISION) AS "_c1"
      FROM (
        SELECT
          "t11"."_local",
          "t11"."_v0",
          DATE_TRUNC('DAY', "t11"."_local") AS "_src"
        FROM (
          SELECT
            TIMEZONE('Europe/Berlin', "t7"."timestamp") AS "_local",
            CAST(JSON_EXTRACT_PATH_TEXT(CAST("t7"."properties" AS JSON), 'revenue') AS DOUBLE PRECISION) AS "_v0"
          FROM (
            SELECT
              *
            FROM "events" AS "t3"
            WHERE
              "t3"."timestamp" >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMPTZ)
              AND "t3"."timestamp" < CAST('2026-03-07T23:00:00+00:00' AS TIMESTAMPTZ)
              AND "t3"."type" = 'track'
              AND "t3"."event" IN ('purchase_complete')
          ) AS "t7"
        ) AS "t11"
      ) AS "t15"
      GROUP BY
        1
    ) AS "t18"
  ) AS "t23"
    ON "t4"."_period" = "t23"."_jp"
  LEFT OUTER JOIN (
    SELECT
      "t26"."_period" AS "_jp",
      "t26"."_c2"
    FROM (
      SELECT
        "t5"."_p" AS "_period",
        "t21"."_c2"
      FROM (
        SELECT
          "t16"."_src",
          CAST(SUM(CAST("t16"."_v0" AS DECIMAL)) AS DOUBLE PRECISION) AS "_c2"
        FROM (
          SELECT
            "t12"."_local",
            "t12"."_v0",
            DATE_TRUNC('DAY', "t12"."_local") AS "_src"
          FROM (
            SELECT
              TIMEZONE('Europe/Berlin', "t9"."timestamp") AS "_local",
              CAST(JSON_EXTRACT_PATH_TEXT(CAST("t9"."properties" AS JSON), 'revenue') AS DOUBLE PRECISION) AS "_v0"
            FROM (
              SELECT
                *
              FROM "events" AS "t3"
              WHERE
                "t3"."timestamp" >= CAST('2026-02-21T23:00:00+00:00' AS TIMESTAMPTZ)
                AND "t3"."timestamp" < CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMPTZ)
                AND "t3"."type" = 'track'
                AND "t3"."event" IN ('purchase_complete')
            ) AS "t9"
          ) AS "t12"
        ) AS "t16"
        GROUP BY
          1
      ) AS "t21"
      INNER JOIN "spine_2" AS "t5"
        ON "t21"."_src" = "t5"."_s"
    ) AS "t26"
  ) AS "t28"
    ON "t4"."_period" = "t28"."_jp"
) AS "t29"
ORDER BY
  "t29"."_period" ASC
