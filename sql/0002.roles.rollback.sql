revoke all on all tables in schema risk from risk_loader;
revoke usage on schema risk from risk_loader;
