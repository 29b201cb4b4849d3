"""The DR engine: replication monitor, pre-flight verifier, failover orchestrator, watcher."""
