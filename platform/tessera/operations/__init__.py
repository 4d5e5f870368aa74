"""What the IT team runs Tessera with: the liveness and readiness probes a load balancer or
Kubernetes asks (`probes`)."""
