"""The Dagster face of the plain clients in `resources/`: one `dg.ConfigurableResource` per client,
holding its configuration (what the Dagster UI shows, `dg.EnvVar` for secrets) and handing runs
the plain client from `create_resource`. Assets, checks, ops and sensors take the client as
`dg.ResourceParam[Client]`; the API process uses the clients and never imports this package."""
