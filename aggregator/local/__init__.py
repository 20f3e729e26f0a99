"""Running the service on one machine: ``centers serve`` (the supervisor), its own Redis, the demo partners,
the bundled sample and the runtime file that lets the CLI find a running service. Not needed where the
service runs as separate processes (workers, the API) against an existing Redis."""
