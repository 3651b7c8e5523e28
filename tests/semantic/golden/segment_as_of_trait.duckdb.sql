SELECT
  COALESCE("t21"."_c0", 0) AS "_m0"
FROM (
  SELECT
    "t3"."_period",
    "t20"."_c0"
  FROM "spine_0" AS "t3"
  LEFT OUTER JOIN (
    SELECT
      "t18"."_period" AS "_jp",
      "t18"."_c0"
    FROM (
      SELECT
        "t17"."_period",
        COUNT(*) AS "_c0"
      FROM (
        SELECT
          "t4"."_p" AS "_period"
        FROM (
          SELECT
            TIMEZONE('Europe/Berlin', "t14"."timestamp") AS "_local"
          FROM (
            SELECT
              *
            FROM (
              SELECT
                *
              FROM (
                SELECT
                  "t7"."message_id",
                  "t7"."type",
                  "t7"."event",
                  "t7"."name",
                  "t7"."user_id",
                  "t7"."anonymous_id",
                  "t7"."group_id",
                  "t7"."previous_id",
                  "t7"."timestamp",
                  "t7"."original_timestamp",
                  "t7"."sent_at",
                  "t7"."received_at",
                  "t7"."properties",
                  "t7"."traits",
                  "t7"."context",
                  "t7"."source",
                  "t7"."historical",
                  "t7"."schema_version",
                  "t11"."_v" AS "_t0"
                FROM (
                  SELECT
                    *
                  FROM "events" AS "t2"
                  WHERE
                    "t2"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 2, 28, 23, 0, 0.0, 'UTC')
                    AND "t2"."timestamp" < MAKE_TIMESTAMPTZ(2026, 3, 31, 22, 0, 0.0, 'UTC')
                    AND "t2"."type" = 'track'
                    AND "t2"."event" IN ('purchase_complete')
                ) AS "t7"
                LEFT OUTER JOIN (
                  SELECT
                    "t9"."_e",
                    "t9"."_ts",
                    "t9"."_mid",
                    "t9"."_v",
                    LEAD("t9"."_ts") OVER (
                      PARTITION BY "t9"."_e"
                      ORDER BY "t9"."_ts" ASC, "t9"."_mid" ASC
                      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
                    ) AS "_to"
                  FROM (
                    SELECT
                      *
                    FROM (
                      SELECT
                        COALESCE("t5"."user_id", "t5"."anonymous_id") AS "_e",
                        "t5"."timestamp" AS "_ts",
                        "t5"."message_id" AS "_mid",
                        CAST("t5"."traits" ->> '$.age' AS BIGINT) AS "_v"
                      FROM (
                        SELECT
                          *
                        FROM "events" AS "t2"
                        WHERE
                          "t2"."type" = 'identify'
                      ) AS "t5"
                    ) AS "t8"
                    WHERE
                      "t8"."_v" IS NOT NULL
                  ) AS "t9"
                ) AS "t11"
                  ON COALESCE("t7"."user_id", "t7"."anonymous_id") = "t11"."_e"
                  AND "t7"."timestamp" >= "t11"."_ts"
                  AND "t7"."timestamp" < COALESCE("t11"."_to", MAKE_TIMESTAMPTZ(2999, 12, 31, 0, 0, 0.0, 'UTC'))
              ) AS "t12"
              WHERE
                (
                  "t12"."context" ->> '$.os.name'
                ) = 'iOS'
            ) AS "t13"
            WHERE
              "t13"."_t0" >= 65
          ) AS "t14"
        ) AS "t16"
        INNER JOIN "spine_1" AS "t4"
          ON "t16"."_local" >= "t4"."_lo" AND "t16"."_local" < "t4"."_hi"
      ) AS "t17"
      GROUP BY
        1
    ) AS "t18"
  ) AS "t20"
    ON "t3"."_period" = "t20"."_jp"
) AS "t21"
