-- Roles are cluster-wide: only drop risk_bi when it owns nothing.
drop role if exists risk_bi;
