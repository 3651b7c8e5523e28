SELECT
  `t33`.`_period`,
  COALESCE(`t33`.`_c0`, 0) AS `_m0`,
  (
    COALESCE(`t33`.`_c1`, 0) - COALESCE(`t33`.`_c2`, 0)
  ) / NULLIF(COALESCE(`t33`.`_c2`, 0), 0) AS `_m1`
FROM (
  SELECT
    `t5`.`_period`,
    `t28`.`_c0`,
    `t31`.`_c1`,
    `t32`.`_c2`
  FROM `spine_0` AS `t5`
  LEFT OUTER JOIN (
    SELECT
      `t24`.`_period` AS `_jp`,
      `t24`.`_c0`
    FROM (
      SELECT
        `t21`.`_period`,
        COUNT(DISTINCT `t21`.`_v0`) AS `_c0`
      FROM (
        SELECT
          `t8`.`_p` AS `_period`,
          `t16`.`_v0`
        FROM (
          SELECT DISTINCT
            `t12`.`_v0`,
            DATE_TRUNC('day', `t12`.`_local`) AS `_local`
          FROM (
            SELECT
              FROM_UTC_TIMESTAMP(CAST(`t9`.`timestamp` AS TIMESTAMP), 'Europe/Berlin') AS `_local`,
              COALESCE(`t9`.`user_id`, `t9`.`anonymous_id`) AS `_v0`
            FROM (
              SELECT
                *
              FROM `events` AS `t4`
              WHERE
                `t4`.`timestamp` >= CAST('2026-02-22T23:00:00+00:00' AS TIMESTAMP)
                AND `t4`.`timestamp` < CAST('2026-03-07T23:00:00+00:00' AS TIMESTAMP)
                AND `t4`.`type` IN ('track', 'page', 'screen')
            ) AS `t9`
          ) AS `t12`
        ) AS `t16`
        INNER JOIN `spine_1` AS `t8`
          ON `t16`.`_local` >= `t8`.`_lo` AND `t16`.`_local` < `t8`.`_hi`
      ) AS `t21`
      GROUP BY
        1
    ) AS `t24`
  ) AS `t28`
    ON `t5`.`_period` = `t28`.`_jp`
  LEFT OUTER JOIN (
    SELECT
      `t25`.`_period` AS `_jp`,
      `t25`.`_c1`
    FROM (
      SELECT
        `t6`.`_p` AS `_period`,
        `t22`.`_c1`
      FROM (
        SELECT
          `t17`.`_src`,
          SUM(`t17`.`_v0`) AS `_c1`
        FROM (
          SELECT
            `t13`.`_local`,
            `t13`.`_v0`,
            DATE_TRUNC('day', `t13`.`_local`) AS `_src`
          FROM (
            SELECT
              FROM_UTC_TIMESTAMP(CAST(`t10`.`timestamp` AS TIMESTAMP), 'Europe/Berlin') AS `_local`,
              CAST(GET_JSON_OBJECT(`t10`.`properties`, '$.revenue') AS DOUBLE) AS `_v0`
            FROM (
              SELECT
                *
              FROM `events` AS `t4`
              WHERE
                `t4`.`timestamp` >= CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMP)
                AND `t4`.`timestamp` < CAST('2026-03-07T23:00:00+00:00' AS TIMESTAMP)
                AND `t4`.`type` = 'track'
                AND `t4`.`event` IN ('purchase_complete')
            ) AS `t10`
          ) AS `t13`
        ) AS `t17`
        GROUP BY
          1
      ) AS `t22`
      INNER JOIN `spine_2` AS `t6`
        ON `t22`.`_src` = `t6`.`_s`
    ) AS `t25`
  ) AS `t31`
    ON `t5`.`_period` = `t31`.`_jp`
  LEFT OUTER JOIN (
    SELECT
      `t26`.`_period` AS `_jp`,
      `t26`.`_c2`
    FROM (
      SELECT
        `t7`.`_p` AS `_period`,
        `t23`.`_c2`
      FROM (
        SELECT
          `t18`.`_src`,
          SUM(`t18`.`_v0`) AS `_c2`
        FROM (
          SELECT
            `t14`.`_local`,
            `t14`.`_v0`,
            DATE_TRUNC('day', `t14`.`_local`) AS `_src`
          FROM (
            SELECT
              FROM_UTC_TIMESTAMP(CAST(`t11`.`timestamp` AS TIMESTAMP), 'Europe/Berlin') AS `_local`,
              CAST(GET_JSON_OBJECT(`t11`.`properties`, '$.revenue') AS DOUBLE) AS `_v0`
            FROM (
              SELECT
                *
              FROM `events` AS `t4`
              WHERE
                `t4`.`timestamp` >= CAST('2026-02-21T23:00:00+00:00' AS TIMESTAMP)
                AND `t4`.`timestamp` < CAST('2026-02-28T23:00:00+00:00' AS TIMESTAMP)
                AND `t4`.`type` = 'track'
                AND `t4`.`event` IN ('purchase_complete')
            ) AS `t11`
          ) AS `t14`
        ) AS `t18`
        GROUP BY
          1
      ) AS `t23`
      INNER JOIN `spine_3` AS `t7`
        ON `t23`.`_src` = `t7`.`_s`
    ) AS `t26`
  ) AS `t32`
    ON `t5`.`_period` = `t32`.`_jp`
) AS `t33`
ORDER BY
  `t33`.`_period` ASC NULLS LAST
