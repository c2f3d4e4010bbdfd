-- depends: 0005.run-history
-- Exchange calendars (docs/data.md): on a region's exchange holiday its positions are
-- carried forward from its previous business day and revalued under the date's market
-- data; every node says which date its positions come from.
alter table risk.var_summary add column positions_date date;

update risk.var_summary set positions_date = business_date;

alter table risk.var_summary alter column positions_date set not null;

alter table risk.var_summary add constraint var_summary_positions_not_after_date
check (positions_date <= business_date);

comment on column risk.var_summary.positions_date is
'Date of the trades the node''s figures value: the business date, or the region''s previous business day when its exchange was closed (positions carried forward).';

create view bi.carried_forward with (security_invoker = false) as
select
    v.business_date,
    v.level,
    v.node,
    v.region,
    v.positions_date
from risk.var_summary as v
where v.positions_date < v.business_date;

comment on view bi.carried_forward is
'One row per business date and hierarchy node whose region''s exchange was closed that day: its figures value the positions of positions_date (the region''s previous business day), revalued under the date''s market data; the firm figure includes them.';
comment on column bi.carried_forward.positions_date is 'Business day of the region the positions were carried forward from.';

grant usage on schema bi to risk_reader;
grant select on bi.carried_forward to risk_reader;
