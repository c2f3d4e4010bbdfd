revoke select on table _yoyo_migration from risk_loader;
alter role risk_loader nologin;
