-- The PostgreSQL schema: the metadata of sql/0001..0012 (SQLite) in
-- PostgreSQL terms. Text that is compared or ordered is COLLATE "C" (byte
-- order, as SQLite compares), so that every list comes out in the order the
-- SQLite backend gives it, whatever the database's locale. Timestamps the
-- Rust side holds as `clock::Timestamp` are timestamptz (millisecond
-- values); the dates of manifests (published_at, expires_at) stay the
-- normalised text the SQLite backend stores and compares.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Images: one row per image. `manifest` holds the full internal JSON of the
-- image (returned as stored, byte for byte); the other columns are copies
-- of the fields ListImages filters on; `wire` is the stored list form
-- (`manifest::Image::listed_json`, see sql/0011_image_wire.sql).
CREATE TABLE images (
    uuid          uuid PRIMARY KEY,
    owner         uuid NOT NULL,
    name          text COLLATE "C" NOT NULL,
    version       text COLLATE "C" NOT NULL,
    state         text COLLATE "C" NOT NULL,   -- active|disabled|unactivated|creating|failed
    activated     boolean NOT NULL,
    disabled      boolean NOT NULL,
    public        boolean NOT NULL,
    type          text COLLATE "C" NOT NULL,
    os            text COLLATE "C" NOT NULL,
    origin        uuid,
    published_at  text COLLATE "C",            -- normalised YYYY-MM-DDTHH:MM:SS.mmmZ
    acl           jsonb NOT NULL DEFAULT '[]', -- account uuids
    tags_search   jsonb NOT NULL DEFAULT '[]', -- "key=value" strings
    billing_tags  jsonb NOT NULL DEFAULT '[]',
    channels      jsonb NOT NULL DEFAULT '[]',
    expires_at    text COLLATE "C",            -- placeholders (creating/failed) only
    manifest      text NOT NULL,
    wire          text
);

-- ListImages' order is (published_at, uuid), NULL dates first ascending
-- (as SQLite sorts them): every ordered index has `published_at NULLS
-- FIRST`, walked forwards for ascending lists and backwards for `desc`.
CREATE INDEX images_list_all ON images (published_at NULLS FIRST, uuid);
CREATE INDEX images_list_state ON images (state, published_at NULLS FIRST, uuid);
CREATE INDEX images_list_owner ON images (owner, state, published_at NULLS FIRST, uuid);
CREATE INDEX images_list_name ON images (name, state, published_at NULLS FIRST, uuid);
CREATE INDEX images_list_version ON images (version, state, published_at NULLS FIRST, uuid);
CREATE INDEX images_list_os ON images (os, state, published_at NULLS FIRST, uuid);
CREATE INDEX images_list_type ON images (type, state, published_at NULLS FIRST, uuid);
CREATE INDEX images_list_public ON images (public, state, published_at NULLS FIRST, uuid);
CREATE INDEX images_origin ON images (origin);
CREATE INDEX images_expires_at ON images (expires_at) WHERE expires_at IS NOT NULL;
-- `name=~…` and `version=~…`: trigram indexes (for the LIKE that
-- db::pg::images adds to `strpos`). Without a pending list (fastupdate
-- off): each insert updates the index itself, so a `~` query never reads
-- an unmerged list, nor does the planner cost one as a reason to scan.
CREATE INDEX images_name_trgm ON images USING gin (name gin_trgm_ops) WITH (fastupdate = off);
CREATE INDEX images_version_trgm ON images USING gin (version gin_trgm_ops) WITH (fastupdate = off);

-- The JSON-array columns, one row per element, written by
-- db::pg::images::insert/update in the statement's transaction (deleted
-- with the image). The tag tables carry the image's state and date: a
-- tag walks (tag, state, published_at, uuid) in ListImages' order.
CREATE TABLE image_tags (
    tag           text COLLATE "C" NOT NULL,   -- "key=value"
    uuid          uuid NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    state         text COLLATE "C" NOT NULL,
    published_at  text COLLATE "C",
    PRIMARY KEY (tag, uuid)
);
CREATE INDEX image_tags_list ON image_tags (tag, state, published_at NULLS FIRST, uuid);
CREATE INDEX image_tags_uuid ON image_tags (uuid);
CREATE TABLE image_billing_tags (
    tag           text COLLATE "C" NOT NULL,
    uuid          uuid NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    state         text COLLATE "C" NOT NULL,
    published_at  text COLLATE "C",
    PRIMARY KEY (tag, uuid)
);
CREATE INDEX image_billing_tags_list ON image_billing_tags (tag, state, published_at NULLS FIRST, uuid);
CREATE INDEX image_billing_tags_uuid ON image_billing_tags (uuid);
-- A tag's images in one state: the planner knows how many from these
-- (tag and state are far from independent), and drives a rare
-- (tag, state) from image_*_list instead of walking every image.
CREATE STATISTICS image_tags_tag_state (mcv, dependencies) ON tag, state FROM image_tags;
CREATE STATISTICS image_billing_tags_tag_state (mcv, dependencies) ON tag, state FROM image_billing_tags;
CREATE TABLE image_acl (
    account  uuid NOT NULL,
    uuid     uuid NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    PRIMARY KEY (account, uuid)
);
CREATE INDEX image_acl_uuid ON image_acl (uuid);

-- Accounts that may authenticate with a bearer token (auth = "token").
CREATE TABLE accounts (
    uuid        uuid PRIMARY KEY,
    login       text COLLATE "C" NOT NULL UNIQUE,
    operator    boolean NOT NULL,
    created_at  text NOT NULL
);
-- Tokens are stored only as SHA-256 hex digests.
CREATE TABLE tokens (
    token_sha256  text PRIMARY KEY,
    account       uuid NOT NULL REFERENCES accounts (uuid) ON DELETE CASCADE,
    created_at    text NOT NULL
);

-- Resumable upload sessions (tus 1.0); see sql/0002, 0004, 0008-0010.
CREATE TABLE uploads (
    id            uuid PRIMARY KEY,
    owner         uuid,                     -- NULL = operator
    length        bigint NOT NULL,
    "offset"      bigint NOT NULL,
    state         text COLLATE "C" NOT NULL, -- uploading|complete|failed|registered
    store         text NOT NULL,
    data_key      text NOT NULL,
    path          text,
    metadata      text NOT NULL DEFAULT '{}',
    content_md5   text,
    md5_state     bytea NOT NULL,
    sha1_state    bytea NOT NULL,
    crc64         bigint,
    md5           text,
    sha1          text,
    error         text,
    image_uuid    uuid,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    data_mtime    text,
    s3_key        text,
    s3_upload_id  text,
    parts         text NOT NULL DEFAULT '[]',
    staged_from   bigint NOT NULL DEFAULT 0,
    concat        text,                     -- NULL | partial | final
    concat_parts  text,                     -- final: JSON array of partial ids
    concat_final  uuid,                     -- partial: the final that uses it
    concat_place  text
);
CREATE INDEX uploads_owner ON uploads (owner, state);
CREATE INDEX uploads_created ON uploads (created_at DESC, id);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
CREATE INDEX uploads_concat_final ON uploads (concat_final);

-- Registrar jobs: one per image being registered from a stored object.
CREATE TABLE registrations (
    image_uuid    uuid PRIMARY KEY,
    kind          text NOT NULL,
    source        text NOT NULL,
    upload_id     uuid,
    store         text NOT NULL,
    source_key    text NOT NULL,
    content_md5   text NOT NULL,
    sha1          text,
    size          bigint,
    compression   text NOT NULL,
    dataset_guid  text,
    activate      boolean NOT NULL,
    state         text COLLATE "C" NOT NULL,  -- pending|done|failed
    attempts      integer NOT NULL DEFAULT 0,
    error_code    text,
    error_message text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX registrations_state ON registrations (state, created_at);

-- Import jobs (AdminImportRemoteImage); see sql/0006.
CREATE TABLE import_jobs (
    job_uuid         uuid PRIMARY KEY,
    image_uuid       uuid NOT NULL,
    task             text NOT NULL,
    source           text NOT NULL,
    skip_owner_check boolean NOT NULL,
    channels         text NOT NULL,
    plan             text NOT NULL,
    created          text NOT NULL DEFAULT '[]',
    execution        text COLLATE "C" NOT NULL,   -- queued|running|succeeded|failed
    current_image    uuid,
    file_offset      bigint NOT NULL DEFAULT 0,
    content_md5      text,
    bytes_received   bigint NOT NULL DEFAULT 0,
    bytes_total      bigint,
    attempts         integer NOT NULL DEFAULT 0,
    error_code       text,
    error_message    text,
    created_at       text COLLATE "C" NOT NULL,
    started_at       text,
    finished_at      text
);
CREATE INDEX import_jobs_image ON import_jobs (image_uuid);
CREATE INDEX import_jobs_execution ON import_jobs (execution);
