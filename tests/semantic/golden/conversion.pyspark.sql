WITH `t7` AS (
  SELECT
    *
  FROM `events` AS `t3`
  WHERE
    `t3`.`timestamp` >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMP)
    AND `t3`.`timestamp` < CAST('2026-03-07T23:00:00+00:00' AS TIMESTAMP)
    AND `t3`.`type` = 'track'
    AND `t3`.`event` IN ('checkout_start')
)
SELECT
  `t27`.`_period`,
  CAST(COALESCE(`t27`.`_c1`, 0) AS DOUBLE) / NULLIF(CAST(COALESCE(`t27`.`_c0`, 0) AS DOUBLE), 0) AS `_m0`
FROM (
  SELECT
    `t4`.`_period`,
    `t23`.`_c0`,
    `t26`.`_c1`
  FROM `spine_0` AS `t4`
  LEFT OUTER JOIN (
    SELECT
      `t19`.`_period` AS `_jp`,
      `t19`.`_c0`
    FROM (
      SELECT
        `t5`.`_p` AS `_period`,
        `t16`.`_c0`
      FROM (
        SELECT
          `t14`.`_src`,
          COUNT(*) AS `_c0`
        FROM (
          SELECT
            `t11`.`_local`,
            DATE_TRUNC('day', `t11`.`_local`) AS `_src`
          FROM (
            SELECT
              FROM_UTC_TIMESTAMP(CAST(`t9`.`timestamp` AS TIMESTAMP), 'Europe/Berlin') AS `_local`
            FROM `t7` AS `t9`
          ) AS `t11`
        ) AS `t14`
        GROUP BY
          1
      ) AS `t16`
      INNER JOIN `spine_1` AS `t5`
        ON `t16`.`_src` = `t5`.`_s`
    ) AS `t19`
  ) AS `t23`
    ON `t4`.`_period` = `t23`.`_jp`
  LEFT OUTER JOIN (
    SELECT
      `t24`.`_period` AS `_jp`,
      `t24`.`_c1`
    FROM (
      SELECT
        `t6`.`_p` AS `_period`,
        `t22`.`_c1`
      FROM (
        SELECT
          `t18`.`_src`,
          COUNT(*) AS `_c1`
        FROM (
          SELECT
            `t17`.`_local`,
            DATE_TRUNC('day', `t17`.`_local`) AS `_src`
          FROM (
            SELECT
              `t13`.`_local`
            FROM (
              SELECT
                FROM_UTC_TIMESTAMP(CAST(`t9`.`timestamp` AS TIMESTAMP), 'Europe/Berlin') AS `_local`,
                `t9`.`timestamp` AS `_ts`,
                `t9`.`message_id` AS `_mid`,
                COALESCE(`t9`.`user_id`, `t9`.`anonymous_id`) AS `_ent`
              FROM `t7` AS `t9`
            ) AS `t13`
            LEFT SEMI JOIN (
              SELECT
                COALESCE(`t3`.`user_id`, `t3`.`anonymous_id`) AS `_cent`,
                `t3`.`timestamp` AS `_cts`,
                `t3`.`message_id` AS `_cmid`
              FROM `events` AS `t3`
              WHERE
                `t3`.`timestamp` >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMP)
                AND `t3`.`timestamp` < CAST('2026-03-08T00:00:00+00:00' AS TIMESTAMP)
                AND `t3`.`type` = 'track'
                AND `t3`.`event` IN ('purchase_complete')
            ) AS `t10`
              ON `t13`.`_ent` = `t10`.`_cent`
              AND `t10`.`_cts` >= `t13`.`_ts`
              AND `t10`.`_cts` <= (
                `t13`.`_ts` + INTERVAL '3600' SECOND
              )
              AND `t13`.`_mid` <> `t10`.`_cmid`
          ) AS `t17`
        ) AS `t18`
        GROUP BY
          1
      ) AS `t22`
      INNER JOIN `spine_2` AS `t6`
        ON `t22`.`_src` = `t6`.`_s`
    ) AS `t24`
  ) AS `t26`
    ON `t4`.`_period` = `t26`.`_jp`
) AS `t27`
ORDER BY
  `t27`.`_period` ASC NULLS LAST
