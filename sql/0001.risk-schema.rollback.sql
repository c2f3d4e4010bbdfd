drop schema if exists risk cascade;
