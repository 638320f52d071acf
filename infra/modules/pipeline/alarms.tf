# CloudWatch alarms on the jobs' metrics (source lag, failed batch jobs, quarantine ratio),
# each notifying one SNS topic when it fires and when it clears.

locals {
  # Metrics the jobs do not publish themselves, computed from two they do (same dimensions):
  # QuarantineRatio = QuarantinedRows / InputRows of a process job's batches.
  derived_metrics = tomap({
    QuarantineRatio = tomap({ numerator = "QuarantinedRows", denominator = "InputRows" })
  })
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = var.alarms

  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = "streamlake ${var.environment}: ${each.value.metric} ${each.value.comparison} ${each.value.threshold} (${join(", ", [for k, v in each.value.dimensions : "${k}=${v}"])})"
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  evaluation_periods  = each.value.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this[each.value.topic].arn]
  ok_actions          = [aws_sns_topic.this[each.value.topic].arn]

  # A metric the jobs publish.
  metric_name = contains(keys(local.derived_metrics), each.value.metric) ? null : each.value.metric
  namespace   = contains(keys(local.derived_metrics), each.value.metric) ? null : each.value.namespace
  dimensions  = contains(keys(local.derived_metrics), each.value.metric) ? null : each.value.dimensions
  statistic   = contains(keys(local.derived_metrics), each.value.metric) ? null : each.value.statistic
  period      = contains(keys(local.derived_metrics), each.value.metric) ? null : each.value.period

  # A derived one: the ratio of the two metrics' sums over the period.
  dynamic "metric_query" {
    for_each = lookup(local.derived_metrics, each.value.metric, tomap({}))

    content {
      id = metric_query.key

      metric {
        metric_name = metric_query.value
        namespace   = each.value.namespace
        dimensions  = each.value.dimensions
        stat        = "Sum"
        period      = each.value.period
      }
    }
  }

  dynamic "metric_query" {
    for_each = contains(keys(local.derived_metrics), each.value.metric) ? [each.value.metric] : []

    content {
      id          = "ratio"
      label       = metric_query.value
      expression  = "IF(denominator > 0, numerator / denominator, 0)"
      return_data = true
    }
  }
}
