"""What a platform team runs edml with: the Grafana dashboard, the Prometheus alert rules
and their Kubernetes wiring. ``python -m ops.build`` writes the generated files."""
