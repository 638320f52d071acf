# Glue workflows: per workflow a start trigger (SCHEDULED on a schedule, EVENT on new files
# under a landing prefix, else ON_DEMAND) that starts the nodes without conditions, and a
# CONDITIONAL trigger per node with conditions.

locals {
  all_job_names = merge(
    { for name, job in aws_glue_job.streaming : name => job.name },
    { for name, job in aws_glue_job.batch : name => job.name },
  )

  # Glue schedules take cron() only: rate(N minutes|hours|days) becomes the cron expression
  # firing at the same times (for N dividing the hour, or the day).
  rate_parts = {
    for name, wf in var.workflows :
    name => regex("^rate\\(([0-9]+) (minute|hour|day)s?\\)$", wf.schedule)
    if wf.schedule != null && startswith(coalesce(wf.schedule, "-"), "rate(")
  }
  rate_as_cron = {
    for name, p in local.rate_parts : name => (
      p[1] == "minute" ? "cron(0/${p[0]} * * * ? *)" :
      p[1] == "hour" ? "cron(0 0/${p[0]} * * ? *)" :
      "cron(0 0 1/${p[0]} * ? *)"
    )
  }

  workflow_start = {
    for name, wf in var.workflows : name => {
      type     = wf.schedule != null ? "SCHEDULED" : wf.on_arrival != null ? "EVENT" : "ON_DEMAND"
      schedule = wf.schedule == null ? null : lookup(local.rate_as_cron, name, wf.schedule)
      jobs     = [for node in wf.nodes : node.job if length(node.conditions) == 0]
    }
  }

  # One trigger per node with conditions. A condition on state ANY (the job ended, either
  # way) is two conditions, SUCCEEDED and FAILED, under the logical operator ANY; otherwise
  # all conditions must hold (AND).
  workflow_conditional = merge([
    for wname, wf in var.workflows : {
      for node in wf.nodes : "${wname}.${node.job}" => {
        workflow = wname
        job      = node.job
        logical  = anytrue([for c in node.conditions : c.state == "ANY"]) ? "ANY" : "AND"
        conditions = flatten([
          for c in node.conditions : c.state == "ANY" ? [
            { job = c.job, state = "SUCCEEDED" },
            { job = c.job, state = "FAILED" },
          ] : [{ job = c.job, state = c.state }]
        ])
      } if length(node.conditions) > 0
    }
  ]...)

  arrival_workflows = { for name, wf in var.workflows : name => var.landing_queues[wf.on_arrival] if wf.on_arrival != null }
}

resource "aws_glue_workflow" "this" {
  for_each = var.workflows

  name                = "${local.prefix}-${each.key}"
  description         = "streamlake workflow ${each.key} (${var.environment})"
  max_concurrent_runs = 1
}

resource "aws_glue_trigger" "start" {
  for_each = var.workflows

  name          = "${local.prefix}-${each.key}-start"
  description   = "Starts ${each.key}"
  workflow_name = aws_glue_workflow.this[each.key].name
  type          = local.workflow_start[each.key].type
  schedule      = local.workflow_start[each.key].schedule
  # An ON_DEMAND trigger that is "started" runs its workflow at once, and an EVENT trigger
  # cannot be started (it is active as created): only SCHEDULED triggers are started.
  enabled           = local.workflow_start[each.key].type == "SCHEDULED"
  start_on_creation = local.workflow_start[each.key].type == "SCHEDULED" ? true : null

  dynamic "actions" {
    for_each = local.workflow_start[each.key].jobs

    content {
      job_name = local.all_job_names[actions.value]
    }
  }

  # Files arriving together start one run: after 10 files, or 60 s after the first.
  dynamic "event_batching_condition" {
    for_each = local.workflow_start[each.key].type == "EVENT" ? [1] : []

    content {
      batch_size   = 10
      batch_window = 60
    }
  }
}

resource "aws_glue_trigger" "conditional" {
  for_each = local.workflow_conditional

  name              = "${local.prefix}-${each.value.workflow}-${each.value.job}"
  description       = "Starts ${each.value.job} in ${each.value.workflow}"
  workflow_name     = aws_glue_workflow.this[each.value.workflow].name
  type              = "CONDITIONAL"
  enabled           = true
  start_on_creation = true

  actions {
    job_name = local.all_job_names[each.value.job]
  }

  predicate {
    logical = each.value.logical

    dynamic "conditions" {
      for_each = each.value.conditions

      content {
        job_name         = local.all_job_names[conditions.value.job]
        state            = conditions.value.state
        logical_operator = "EQUALS"
      }
    }
  }
}

# New objects under an on-arrival workflow's landing prefix start it through EventBridge
# (the bucket sends its events to EventBridge; see aws_s3_bucket_notification.pipeline).
resource "aws_cloudwatch_event_rule" "arrival" {
  for_each = local.arrival_workflows

  name        = "${local.prefix}-${each.key}-arrival"
  description = "New objects under s3://${each.value.bucket}/${each.value.prefix} start ${each.key}"

  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [each.value.bucket] }
      object = { key = [{ prefix = each.value.prefix }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "arrival" {
  for_each = local.arrival_workflows

  rule     = aws_cloudwatch_event_rule.arrival[each.key].name
  arn      = aws_glue_workflow.this[each.key].arn
  role_arn = aws_iam_role.events_to_glue[0].arn
}
