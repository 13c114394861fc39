# MirrorMaker 2 into this region: one source connector per other region. Mirrored topics keep their names
# prefixed by the source alias (e.g. us-central1.wallet.events), so a region never re-mirrors what it received
# and the applier can tell the origin by topic. Checkpoints translate consumer offsets for failover.
resource "google_managed_kafka_connector" "source" {
  for_each        = var.sources
  connector_id    = "mm2-from-${each.key}"
  connect_cluster = element(split("/", var.connect_cluster), length(split("/", var.connect_cluster)) - 1)
  location        = var.region
  configs = {
    "connector.class"                       = "org.apache.kafka.connect.mirror.MirrorSourceConnector"
    "name"                                  = "mm2-from-${each.key}"
    "source.cluster.alias"                  = each.key
    "target.cluster.alias"                  = var.region
    "source.cluster.bootstrap.servers"      = each.value
    "target.cluster.bootstrap.servers"      = var.local_bootstrap
    "topics"                                = var.topics
    "tasks.max"                             = "3"
    "replication.factor"                    = "3"
    "sync.topic.configs.enabled"            = "true"
    "offset-syncs.topic.replication.factor" = "3"
  }
  task_restart_policy {
    minimum_backoff = "60s"
    maximum_backoff = "1800s"
  }
}

resource "google_managed_kafka_connector" "checkpoint" {
  for_each        = var.sources
  connector_id    = "mm2-checkpoint-${each.key}"
  connect_cluster = element(split("/", var.connect_cluster), length(split("/", var.connect_cluster)) - 1)
  location        = var.region
  configs = {
    "connector.class"                   = "org.apache.kafka.connect.mirror.MirrorCheckpointConnector"
    "name"                              = "mm2-checkpoint-${each.key}"
    "source.cluster.alias"              = each.key
    "target.cluster.alias"              = var.region
    "source.cluster.bootstrap.servers"  = each.value
    "target.cluster.bootstrap.servers"  = var.local_bootstrap
    "groups"                            = ".*"
    "emit.checkpoints.interval.seconds" = "10"
    "sync.group.offsets.enabled"        = "true"
  }
}
