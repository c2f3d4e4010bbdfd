-- depends: 0001.risk-schema
-- Roles: risk_loader writes `risk`; risk_reader reads only what BI is given (schema bi).
do $$
begin
    if not exists (select from pg_roles where rolname = 'risk_loader') then
        create role risk_loader nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'risk_reader') then
        create role risk_reader nologin;
    end if;
end
$$;

grant usage on schema risk to risk_loader;
grant select, insert, update, delete on all tables in schema risk to risk_loader;
alter default privileges in schema risk
grant select, insert, update, delete on tables to risk_loader;
revoke all on schema risk from risk_reader;
