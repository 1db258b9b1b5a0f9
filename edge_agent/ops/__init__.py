"""Operating the agent on a gateway: metrics, the health verdict, the HTTP endpoint, logs."""
