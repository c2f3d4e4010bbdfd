-- depends: 0002.roles
-- risk_bi: the BI tool's (Superset's) login. It holds nothing but membership of
-- risk_reader, so it reads the bi views and nothing of risk; its password is set out of
-- band from the secrets backend (docs/bi.md), never here.
do $$
begin
    if not exists (select from pg_roles where rolname = 'risk_bi') then
        create role risk_bi login in role risk_reader;
    end if;
end
$$;

comment on role risk_bi is 'Superset''s login: member of risk_reader (bi only), no other rights';
