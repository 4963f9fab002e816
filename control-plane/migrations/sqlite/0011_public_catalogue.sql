-- Whether a tenant's catalogue is public: its courses with published units
-- are then served as server-rendered pages at /catalogue/<slug>, for anyone
-- and for search engines. Off by default; authors switch it.
ALTER TABLE tenants ADD COLUMN catalogue_public BIGINT NOT NULL DEFAULT 0;
