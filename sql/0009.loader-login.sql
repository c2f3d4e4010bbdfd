-- depends: 0002.roles
-- The nightly loader connects as risk_loader (DML only, never DDL): it may log in (its
-- password is set out of band from the secret scope, docs/deploying.md) and read which
-- migrations are applied, so it refuses to load into a schema older than its code.
alter role risk_loader login;
grant select on table _yoyo_migration to risk_loader;
