//! The PostgreSQL backend's [`Meta`]: each named operation is the function
//! of the same name in `db::pg::{images, accounts, uploads, registrations,
//! imports, stats, leases}`, on the connection of the transaction at hand.

use crate::db::lifecycle::{PolicyImage, PolicyMark};
use uuid::Uuid;

use super::{
    PgConn, accounts, downloads, images, imports, leases, lifecycle, registrations, stats, uploads,
    usage,
};
use crate::clock::Timestamp;
use crate::db::Result;
use crate::db::accounts::Account;
use crate::db::downloads::DownloadStats;
use crate::db::images::{ListQuery, Listed, Select};
use crate::db::imports::{Execution, ImportJob};
use crate::db::meta::Meta;
use crate::db::registrations::{Job, JobState};
use crate::db::stats::Counts;
use crate::db::uploads::{ClaimRefused, ConcatPlace, Upload};
use crate::db::usage::{AccountTotals, QuotaOverride, Usage};
use crate::manifest::Image;

impl Meta for PgConn {
    fn image_insert(&self, img: &Image) -> Result<()> {
        images::insert(self, img)
    }

    fn image_update(&self, img: &Image) -> Result<()> {
        images::update(self, img)
    }

    fn image_get(&self, uuid: Uuid) -> Result<Option<Image>> {
        images::get(self, uuid)
    }

    fn image_delete(&self, uuid: Uuid) -> Result<bool> {
        images::delete(self, uuid)
    }

    fn image_dependents(&self, uuid: Uuid) -> Result<Vec<Uuid>> {
        images::dependents(self, uuid)
    }

    fn image_expired_placeholders(&self, now: Timestamp) -> Result<Vec<Uuid>> {
        images::expired_placeholders(self, now)
    }

    fn image_all(&self) -> Result<Vec<Image>> {
        images::all(self)
    }

    fn image_list(&self, q: &ListQuery) -> Result<Vec<Image>> {
        images::list(self, q)
    }

    fn image_list_json(&self, q: &ListQuery, select: Select) -> Result<Vec<Listed>> {
        images::list_json(self, q, select)
    }

    fn image_list_gen(&self) -> Result<i64> {
        images::list_gen(self)
    }

    fn account_create(
        &self,
        login: &str,
        operator: bool,
        uuid: Option<Uuid>,
    ) -> Result<(Account, String)> {
        accounts::create(self, login, operator, uuid)
    }

    fn account_by_token(&self, token: &str) -> Result<Option<Account>> {
        accounts::by_token(self, token)
    }

    fn account_by_uuid(&self, uuid: Uuid) -> Result<Option<Account>> {
        accounts::by_uuid(self, uuid)
    }

    fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        accounts::by_login(self, login)
    }

    fn upload_insert(&self, u: &Upload) -> Result<()> {
        uploads::insert(self, u)
    }

    fn upload_update(&self, u: &Upload) -> Result<()> {
        uploads::update(self, u)
    }

    fn upload_get(&self, id: Uuid) -> Result<Option<Upload>> {
        uploads::get(self, id)
    }

    fn upload_delete(&self, id: Uuid) -> Result<bool> {
        uploads::delete(self, id)
    }

    fn upload_set_used_by(&self, id: Uuid, by: Option<Uuid>) -> Result<()> {
        uploads::set_used_by(self, id, by)
    }

    fn upload_set_place(&self, id: Uuid, place: Option<&ConcatPlace>) -> Result<()> {
        uploads::set_place(self, id, place)
    }

    fn upload_spent_partials(&self, of: Option<Uuid>) -> Result<Vec<Upload>> {
        uploads::spent_partials(self, of)
    }

    fn upload_list(&self, owner: Option<Uuid>) -> Result<Vec<Upload>> {
        uploads::list(self, owner)
    }

    fn upload_bytes_in_flight(&self, owner: Option<Uuid>) -> Result<u64> {
        uploads::bytes_in_flight(self, owner)
    }

    fn upload_open_count(&self, owner: Option<Uuid>) -> Result<u64> {
        uploads::open_count(self, owner)
    }

    fn upload_stalled(&self) -> Result<Vec<Upload>> {
        uploads::stalled(self)
    }

    fn upload_expired(&self, now: Timestamp) -> Result<Vec<Upload>> {
        uploads::expired(self, now)
    }

    fn upload_mark_registered(
        &self,
        id: Uuid,
        image: Uuid,
        now: Timestamp,
    ) -> Result<std::result::Result<(), ClaimRefused>> {
        uploads::mark_registered(self, id, image, now)
    }

    fn upload_unmark_registered(&self, id: Uuid, image: Uuid) -> Result<()> {
        uploads::unmark_registered(self, id, image)
    }

    fn job_insert(&self, j: &Job) -> Result<()> {
        registrations::insert(self, j)
    }

    fn job_get(&self, image: Uuid) -> Result<Option<Job>> {
        registrations::get(self, image)
    }

    fn job_bump_attempts(&self, image: Uuid) -> Result<u32> {
        registrations::bump_attempts(self, image)
    }

    fn job_delete(&self, image: Uuid) -> Result<()> {
        registrations::delete(self, image)
    }

    fn job_pending(&self) -> Result<Vec<Job>> {
        registrations::pending(self)
    }

    fn import_insert(&self, j: &ImportJob) -> Result<()> {
        imports::insert(self, j)
    }

    fn import_get(&self, job: Uuid) -> Result<Option<ImportJob>> {
        imports::get(self, job)
    }

    fn import_list_for_image(
        &self,
        image: Uuid,
        execution: Option<Execution>,
    ) -> Result<Vec<ImportJob>> {
        imports::list_for_image(self, image, execution)
    }

    fn import_active_for_image(&self, image: Uuid) -> Result<Option<ImportJob>> {
        imports::active_for_image(self, image)
    }

    fn import_unfinished(&self) -> Result<Vec<ImportJob>> {
        imports::unfinished(self)
    }

    fn import_start(&self, job: Uuid, now: &str) -> Result<u32> {
        imports::start(self, job, now)
    }

    fn import_add_created(&self, job: Uuid, image: Uuid) -> Result<()> {
        imports::add_created(self, job, image)
    }

    fn import_checkpoint(
        &self,
        job: Uuid,
        image: Option<Uuid>,
        file_offset: u64,
        content_md5: Option<&str>,
        bytes_received: u64,
    ) -> Result<()> {
        imports::checkpoint(self, job, image, file_offset, content_md5, bytes_received)
    }

    fn import_set_total(&self, job: Uuid, total: u64) -> Result<()> {
        imports::set_total(self, job, total)
    }

    fn downloads_add(&self, batch: &[(Uuid, DownloadStats)]) -> Result<()> {
        downloads::add(self, batch)
    }

    fn downloads_of(&self, uuids: &[Uuid]) -> Result<Vec<(Uuid, DownloadStats)>> {
        downloads::of(self, uuids)
    }

    fn usage_of(&self, owner: Uuid, since_day: &str) -> Result<Usage> {
        usage::of(self, owner, since_day)
    }

    fn usage_by_account(&self, limit: u32) -> Result<Vec<AccountTotals>> {
        usage::by_account(self, limit)
    }

    fn quota_get(&self, account: Uuid) -> Result<QuotaOverride> {
        usage::quota_get(self, account)
    }

    fn quota_set(&self, account: Uuid, q: QuotaOverride) -> Result<()> {
        usage::quota_set(self, account, q)
    }

    fn quota_lock(&self, account: Uuid) -> Result<()> {
        usage::quota_lock(self, account)
    }

    fn policy_images(&self) -> Result<Vec<PolicyImage>> {
        lifecycle::images(self)
    }

    fn policy_mark_disabled(
        &self,
        uuid: Uuid,
        rule: &str,
        at: Timestamp,
        delete_after: Timestamp,
    ) -> Result<()> {
        lifecycle::mark_disabled(self, uuid, rule, at, delete_after)
    }

    fn policy_reenabled(&self, uuid: Uuid, at: Timestamp) -> Result<()> {
        lifecycle::reenabled(self, uuid, at)
    }

    fn policy_mark(&self, uuid: Uuid) -> Result<Option<PolicyMark>> {
        lifecycle::mark_of(self, uuid)
    }

    fn image_count(&self) -> Result<u64> {
        stats::image_count(self)
    }

    fn counts(&self) -> Result<Counts> {
        stats::counts(self)
    }

    fn lease_claim(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Option<i64>> {
        leases::claim(self, name, owner, ttl_ms)
    }

    fn lease_renew(&self, name: &str, fence: i64, ttl_ms: u64) -> Result<bool> {
        leases::renew(self, name, fence, ttl_ms)
    }

    fn lease_holds(&self, name: &str, fence: i64) -> Result<bool> {
        leases::holds(self, name, fence)
    }

    fn lease_release(&self, name: &str, fence: i64) -> Result<()> {
        leases::release(self, name, fence)
    }

    fn upload_list_page(
        &self,
        owner: Option<Uuid>,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Upload>> {
        uploads::list_page(self, owner, after, limit)
    }

    fn job_set_state(
        &self,
        image: Uuid,
        state: JobState,
        error: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<()> {
        registrations::set_state(self, image, state, error, now)
    }

    fn import_finish(
        &self,
        job: Uuid,
        execution: Execution,
        error: Option<(&str, &str)>,
        now: &str,
    ) -> Result<()> {
        imports::finish(self, job, execution, error, now)
    }
}
