//! The metadata store's named operations: what the services may ask of the
//! database (images, accounts, uploads, registrar jobs, import jobs,
//! counts), whatever the backend. A [`Meta`] is one transaction of one
//! backend: the services' read-modify-write steps call these operations
//! inside `Db::read` or `Db::write`, and each backend (SQLite in
//! `db::sqlite`, PostgreSQL in `db::pg`) answers them with its own SQL.
//! Nothing here names a driver type.

use uuid::Uuid;

use super::Result;
use super::accounts::Account;
use super::downloads::DownloadStats;
use super::images::{ListQuery, Listed, Select};
use super::imports::{Execution, ImportJob};
use super::lifecycle::{PolicyImage, PolicyMark};
use super::registrations::{Job, JobState};
use super::stats::Counts;
use super::uploads::{ClaimRefused, ConcatPlace, Upload};
use super::usage::{AccountTotals, QuotaOverride, Usage};
use crate::clock::Timestamp;
use crate::manifest::Image;

/// One transaction of the metadata store (read-only inside `Db::read`).
/// Every operation is a statement or a few of one backend; none waits on
/// anything but the database.
pub trait Meta {
    // ---- images ----
    /// Insert a new image; an existing uuid is `DbError::Conflict`.
    fn image_insert(&self, img: &Image) -> Result<()>;
    /// Replace the stored image with the same uuid (`DbError::NotFound` if none).
    fn image_update(&self, img: &Image) -> Result<()>;
    fn image_get(&self, uuid: Uuid) -> Result<Option<Image>>;
    /// Delete an image; false if there was none.
    fn image_delete(&self, uuid: Uuid) -> Result<bool>;
    /// Images whose `origin` is `uuid`.
    fn image_dependents(&self, uuid: Uuid) -> Result<Vec<Uuid>>;
    /// Placeholders whose `expires_at` is before `now`.
    fn image_expired_placeholders(&self, now: Timestamp) -> Result<Vec<Uuid>>;
    /// Every image (admin checks).
    fn image_all(&self) -> Result<Vec<Image>>;
    /// ListImages: IMGAPI's filters and the `account` visibility union.
    fn image_list(&self, q: &ListQuery) -> Result<Vec<Image>>;
    /// [`Meta::image_list`], each image as stored (its list form or manifest).
    fn image_list_json(&self, q: &ListQuery, select: Select) -> Result<Vec<Listed>>;
    /// The list generation: a number that moves in every transaction that
    /// changes an image (`list_gen`, moved by triggers), so that a list
    /// read at one generation is the list until it moves.
    fn image_list_gen(&self) -> Result<i64>;

    // ---- accounts ----
    /// Create an account with a first token; returns it and the token.
    fn account_create(
        &self,
        login: &str,
        operator: bool,
        uuid: Option<Uuid>,
    ) -> Result<(Account, String)>;
    fn account_by_token(&self, token: &str) -> Result<Option<Account>>;
    fn account_by_uuid(&self, uuid: Uuid) -> Result<Option<Account>>;
    fn account_by_login(&self, login: &str) -> Result<Option<Account>>;

    // ---- uploads ----
    fn upload_insert(&self, u: &Upload) -> Result<()>;
    /// Replace the stored upload with the same id.
    fn upload_update(&self, u: &Upload) -> Result<()>;
    fn upload_get(&self, id: Uuid) -> Result<Option<Upload>>;
    /// Delete an upload; false if there was none.
    fn upload_delete(&self, id: Uuid) -> Result<bool>;
    /// The final that uses a partial (or none).
    fn upload_set_used_by(&self, id: Uuid, by: Option<Uuid>) -> Result<()>;
    /// Where a partial writes in place (or nowhere).
    fn upload_set_place(&self, id: Uuid, place: Option<&ConcatPlace>) -> Result<()>;
    /// Partials whose final is complete (of `of`, or of any final).
    fn upload_spent_partials(&self, of: Option<Uuid>) -> Result<Vec<Upload>>;
    /// Every upload (of `owner`, or of everyone).
    fn upload_list(&self, owner: Option<Uuid>) -> Result<Vec<Upload>>;
    /// A page of uploads in (created_at, id) order after `after`.
    fn upload_list_page(
        &self,
        owner: Option<Uuid>,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Upload>>;
    /// Bytes declared by unfinished uploads (of `owner`, or of everyone).
    fn upload_bytes_in_flight(&self, owner: Option<Uuid>) -> Result<u64>;
    /// Unfinished uploads (of `owner`, or of everyone).
    fn upload_open_count(&self, owner: Option<Uuid>) -> Result<u64>;
    /// Uploads whose completion a crash cut short.
    fn upload_stalled(&self) -> Result<Vec<Upload>>;
    /// Unfinished uploads idle past their expiry at `now`.
    fn upload_expired(&self, now: Timestamp) -> Result<Vec<Upload>>;
    /// Claim a complete upload for `image`; a second claim is refused.
    fn upload_mark_registered(
        &self,
        id: Uuid,
        image: Uuid,
        now: Timestamp,
    ) -> Result<std::result::Result<(), ClaimRefused>>;
    /// Give a claimed upload back.
    fn upload_unmark_registered(&self, id: Uuid, image: Uuid) -> Result<()>;

    // ---- registrar jobs ----
    fn job_insert(&self, j: &Job) -> Result<()>;
    fn job_get(&self, image: Uuid) -> Result<Option<Job>>;
    fn job_set_state(
        &self,
        image: Uuid,
        state: JobState,
        error: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<()>;
    /// One more attempt; returns the new count.
    fn job_bump_attempts(&self, image: Uuid) -> Result<u32>;
    fn job_delete(&self, image: Uuid) -> Result<()>;
    /// Jobs not done nor failed, oldest first.
    fn job_pending(&self) -> Result<Vec<Job>>;

    // ---- import jobs ----
    fn import_insert(&self, j: &ImportJob) -> Result<()>;
    fn import_get(&self, job: Uuid) -> Result<Option<ImportJob>>;
    fn import_list_for_image(
        &self,
        image: Uuid,
        execution: Option<Execution>,
    ) -> Result<Vec<ImportJob>>;
    fn import_active_for_image(&self, image: Uuid) -> Result<Option<ImportJob>>;
    fn import_unfinished(&self) -> Result<Vec<ImportJob>>;
    /// Mark a job running; returns its attempt number.
    fn import_start(&self, job: Uuid, now: &str) -> Result<u32>;
    fn import_add_created(&self, job: Uuid, image: Uuid) -> Result<()>;
    fn import_checkpoint(
        &self,
        job: Uuid,
        image: Option<Uuid>,
        file_offset: u64,
        content_md5: Option<&str>,
        bytes_received: u64,
    ) -> Result<()>;
    fn import_set_total(&self, job: Uuid, total: u64) -> Result<()>;
    fn import_finish(
        &self,
        job: Uuid,
        execution: Execution,
        error: Option<(&str, &str)>,
        now: &str,
    ) -> Result<()>;

    // ---- leases (fencing tokens; the database's clock) ----
    /// Claim `name` for `owner` for `ttl_ms` if it is free, expired or
    /// `owner`'s already: the new fence, or None while another holds it.
    fn lease_claim(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Option<i64>>;
    /// Extend a held lease; false if `fence` no longer holds it.
    fn lease_renew(&self, name: &str, fence: i64, ttl_ms: u64) -> Result<bool>;
    /// Does `fence` still hold `name`?
    fn lease_holds(&self, name: &str, fence: i64) -> Result<bool>;
    /// Give a lease back (if `fence` still holds it).
    fn lease_release(&self, name: &str, fence: i64) -> Result<()>;

    // ---- download statistics ----
    /// Add a node's batch of download counts (images deleted since are
    /// skipped).
    fn downloads_add(&self, batch: &[(Uuid, DownloadStats)]) -> Result<()>;
    /// The statistics of those of `uuids` downloaded at least once.
    fn downloads_of(&self, uuids: &[Uuid]) -> Result<Vec<(Uuid, DownloadStats)>>;

    // ---- usage ----
    /// `owner`'s usage, with its downloads since `since_day` (YYYY-MM-DD).
    fn usage_of(&self, owner: Uuid, since_day: &str) -> Result<Usage>;
    /// Every account with images or unfinished uploads, by bytes, largest
    /// first; at most `limit`.
    fn usage_by_account(&self, limit: u32) -> Result<Vec<AccountTotals>>;
    /// `account`'s own quotas (all `None` if it has none).
    fn quota_get(&self, account: Uuid) -> Result<QuotaOverride>;
    /// Set `account`'s own quotas (all `None`: back to the configuration's).
    fn quota_set(&self, account: Uuid, q: QuotaOverride) -> Result<()>;
    /// Hold `account`'s usage until this write transaction ends: another
    /// transaction adding to it waits (a quota check reads, then adds).
    fn quota_lock(&self, account: Uuid) -> Result<()>;

    // ---- lifecycle policy ----
    /// Every image, as the lifecycle policy weighs it.
    fn policy_images(&self) -> Result<Vec<PolicyImage>>;
    /// The policy disabled `uuid` by `rule` at `at`; it may delete it from
    /// `delete_after` on.
    fn policy_mark_disabled(
        &self,
        uuid: Uuid,
        rule: &str,
        at: Timestamp,
        delete_after: Timestamp,
    ) -> Result<()>;
    /// Someone enabled `uuid` again at `at` (if the policy had disabled it).
    fn policy_reenabled(&self, uuid: Uuid, at: Timestamp) -> Result<()>;
    /// The policy's mark on `uuid`, if it disabled it.
    fn policy_mark(&self, uuid: Uuid) -> Result<Option<PolicyMark>>;

    // ---- counts ----
    /// Number of images stored (any state).
    fn image_count(&self) -> Result<u64>;
    /// Images, uploads by state and registrar jobs by state.
    fn counts(&self) -> Result<Counts>;
}
