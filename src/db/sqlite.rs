//! The SQLite backend's [`Meta`]: each named operation is the function of
//! the same name in `db::{images, accounts, uploads, registrations,
//! imports, stats}`, run on the connection of the transaction at hand.

use super::lifecycle::{self, PolicyImage, PolicyMark};
use rusqlite::Connection;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use uuid::Uuid;

use super::Result;
use super::accounts::{self, Account};
use super::downloads::{self, DownloadStats};
use super::images::{self, ListQuery, Listed, Select};
use super::imports::{self, Execution, ImportJob};
use super::leases;
use super::meta::Meta;
use super::registrations::{self, Job, JobState};
use super::stats::{self, Counts};
use super::uploads::{self, ClaimRefused, ConcatPlace, Upload};
use super::usage::{self, AccountTotals, QuotaOverride, Usage};
use crate::clock::Timestamp;
use crate::manifest::Image;
use crate::store::StoreName;
use crate::store::name::UnknownStore;

/// A transaction (or read connection) of the SQLite database.
pub struct SqliteTx<'a>(pub &'a Connection);

impl Meta for SqliteTx<'_> {
    fn image_insert(&self, img: &Image) -> Result<()> {
        images::insert(self.0, img)
    }

    fn image_update(&self, img: &Image) -> Result<()> {
        images::update(self.0, img)
    }

    fn image_get(&self, uuid: Uuid) -> Result<Option<Image>> {
        images::get(self.0, uuid)
    }

    fn image_delete(&self, uuid: Uuid) -> Result<bool> {
        images::delete(self.0, uuid)
    }

    fn image_dependents(&self, uuid: Uuid) -> Result<Vec<Uuid>> {
        images::dependents(self.0, uuid)
    }

    fn image_expired_placeholders(&self, now: Timestamp) -> Result<Vec<Uuid>> {
        images::expired_placeholders(self.0, now)
    }

    fn image_all(&self) -> Result<Vec<Image>> {
        images::all(self.0)
    }

    fn image_list(&self, q: &ListQuery) -> Result<Vec<Image>> {
        images::list(self.0, q)
    }

    fn image_list_json(&self, q: &ListQuery, select: Select) -> Result<Vec<Listed>> {
        images::list_json(self.0, q, select)
    }

    fn image_list_gen(&self) -> Result<i64> {
        images::list_gen(self.0)
    }

    fn account_create(
        &self,
        login: &str,
        operator: bool,
        uuid: Option<Uuid>,
    ) -> Result<(Account, String)> {
        accounts::create(self.0, login, operator, uuid)
    }

    fn account_by_token(&self, token: &str) -> Result<Option<Account>> {
        accounts::by_token(self.0, token)
    }

    fn account_by_uuid(&self, uuid: Uuid) -> Result<Option<Account>> {
        accounts::by_uuid(self.0, uuid)
    }

    fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        accounts::by_login(self.0, login)
    }

    fn upload_insert(&self, u: &Upload) -> Result<()> {
        uploads::insert(self.0, u)
    }

    fn upload_update(&self, u: &Upload) -> Result<()> {
        uploads::update(self.0, u)
    }

    fn upload_get(&self, id: Uuid) -> Result<Option<Upload>> {
        uploads::get(self.0, id)
    }

    fn upload_delete(&self, id: Uuid) -> Result<bool> {
        uploads::delete(self.0, id)
    }

    fn upload_set_used_by(&self, id: Uuid, by: Option<Uuid>) -> Result<()> {
        uploads::set_used_by(self.0, id, by)
    }

    fn upload_set_place(&self, id: Uuid, place: Option<&ConcatPlace>) -> Result<()> {
        uploads::set_place(self.0, id, place)
    }

    fn upload_spent_partials(&self, of: Option<Uuid>) -> Result<Vec<Upload>> {
        uploads::spent_partials(self.0, of)
    }

    fn upload_list(&self, owner: Option<Uuid>) -> Result<Vec<Upload>> {
        uploads::list(self.0, owner)
    }

    fn upload_bytes_in_flight(&self, owner: Option<Uuid>) -> Result<u64> {
        uploads::bytes_in_flight(self.0, owner)
    }

    fn upload_open_count(&self, owner: Option<Uuid>) -> Result<u64> {
        uploads::open_count(self.0, owner)
    }

    fn upload_stalled(&self) -> Result<Vec<Upload>> {
        uploads::stalled(self.0)
    }

    fn upload_expired(&self, now: Timestamp) -> Result<Vec<Upload>> {
        uploads::expired(self.0, now)
    }

    fn upload_mark_registered(
        &self,
        id: Uuid,
        image: Uuid,
        now: Timestamp,
    ) -> Result<std::result::Result<(), ClaimRefused>> {
        uploads::mark_registered(self.0, id, image, now)
    }

    fn upload_unmark_registered(&self, id: Uuid, image: Uuid) -> Result<()> {
        uploads::unmark_registered(self.0, id, image)
    }

    fn job_insert(&self, j: &Job) -> Result<()> {
        registrations::insert(self.0, j)
    }

    fn job_get(&self, image: Uuid) -> Result<Option<Job>> {
        registrations::get(self.0, image)
    }

    fn job_bump_attempts(&self, image: Uuid) -> Result<u32> {
        registrations::bump_attempts(self.0, image)
    }

    fn job_delete(&self, image: Uuid) -> Result<()> {
        registrations::delete(self.0, image)
    }

    fn job_pending(&self) -> Result<Vec<Job>> {
        registrations::pending(self.0)
    }

    fn import_insert(&self, j: &ImportJob) -> Result<()> {
        imports::insert(self.0, j)
    }

    fn import_get(&self, job: Uuid) -> Result<Option<ImportJob>> {
        imports::get(self.0, job)
    }

    fn import_list_for_image(
        &self,
        image: Uuid,
        execution: Option<Execution>,
    ) -> Result<Vec<ImportJob>> {
        imports::list_for_image(self.0, image, execution)
    }

    fn import_active_for_image(&self, image: Uuid) -> Result<Option<ImportJob>> {
        imports::active_for_image(self.0, image)
    }

    fn import_unfinished(&self) -> Result<Vec<ImportJob>> {
        imports::unfinished(self.0)
    }

    fn import_start(&self, job: Uuid, now: &str) -> Result<u32> {
        imports::start(self.0, job, now)
    }

    fn import_add_created(&self, job: Uuid, image: Uuid) -> Result<()> {
        imports::add_created(self.0, job, image)
    }

    fn import_checkpoint(
        &self,
        job: Uuid,
        image: Option<Uuid>,
        file_offset: u64,
        content_md5: Option<&str>,
        bytes_received: u64,
    ) -> Result<()> {
        imports::checkpoint(self.0, job, image, file_offset, content_md5, bytes_received)
    }

    fn import_set_total(&self, job: Uuid, total: u64) -> Result<()> {
        imports::set_total(self.0, job, total)
    }

    fn downloads_add(&self, batch: &[(Uuid, DownloadStats)]) -> Result<()> {
        downloads::add(self.0, batch)
    }

    fn downloads_of(&self, uuids: &[Uuid]) -> Result<Vec<(Uuid, DownloadStats)>> {
        downloads::of(self.0, uuids)
    }

    fn usage_of(&self, owner: Uuid, since_day: &str) -> Result<Usage> {
        usage::of(self.0, owner, since_day)
    }

    fn usage_by_account(&self, limit: u32) -> Result<Vec<AccountTotals>> {
        usage::by_account(self.0, limit)
    }

    fn quota_get(&self, account: Uuid) -> Result<QuotaOverride> {
        usage::quota_get(self.0, account)
    }

    fn quota_set(&self, account: Uuid, q: QuotaOverride) -> Result<()> {
        usage::quota_set(self.0, account, q)
    }

    fn quota_lock(&self, _account: Uuid) -> Result<()> {
        // Write transactions run one at a time on the one writer.
        Ok(())
    }

    fn policy_images(&self) -> Result<Vec<PolicyImage>> {
        lifecycle::images(self.0)
    }

    fn policy_mark_disabled(
        &self,
        uuid: Uuid,
        rule: &str,
        at: Timestamp,
        delete_after: Timestamp,
    ) -> Result<()> {
        lifecycle::mark_disabled(self.0, uuid, rule, at, delete_after)
    }

    fn policy_reenabled(&self, uuid: Uuid, at: Timestamp) -> Result<()> {
        lifecycle::reenabled(self.0, uuid, at)
    }

    fn policy_mark(&self, uuid: Uuid) -> Result<Option<PolicyMark>> {
        lifecycle::mark_of(self.0, uuid)
    }

    fn image_count(&self) -> Result<u64> {
        stats::image_count(self.0)
    }

    fn counts(&self) -> Result<Counts> {
        stats::counts(self.0)
    }

    fn lease_claim(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Option<i64>> {
        leases::claim(self.0, name, owner, ttl_ms)
    }

    fn lease_renew(&self, name: &str, fence: i64, ttl_ms: u64) -> Result<bool> {
        leases::renew(self.0, name, fence, ttl_ms)
    }

    fn lease_holds(&self, name: &str, fence: i64) -> Result<bool> {
        leases::holds(self.0, name, fence)
    }

    fn lease_release(&self, name: &str, fence: i64) -> Result<()> {
        leases::release(self.0, name, fence)
    }

    fn upload_list_page(
        &self,
        owner: Option<Uuid>,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Upload>> {
        uploads::list_page(self.0, owner, after, limit)
    }

    fn job_set_state(
        &self,
        image: Uuid,
        state: JobState,
        error: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<()> {
        registrations::set_state(self.0, image, state, error, now)
    }

    fn import_finish(
        &self,
        job: Uuid,
        execution: Execution,
        error: Option<(&str, &str)>,
        now: &str,
    ) -> Result<()> {
        imports::finish(self.0, job, execution, error, now)
    }
}

// Domain values as SQLite stores them: as their text forms.

/// A timestamp is its `YYYY-MM-DDTHH:MM:SS.mmmZ` text, so SQL compares it
/// as text.
impl ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for Timestamp {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        Timestamp::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("bad timestamp {s:?}").into()))
    }
}

/// A store's name is its text.
impl ToSql for StoreName {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for StoreName {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        v.as_str()?
            .parse()
            .map_err(|e: UnknownStore| FromSqlError::Other(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_their_text() {
        let t = Timestamp::parse("2026-01-02T03:04:06.506Z").unwrap();
        let c = Connection::open_in_memory().unwrap();
        let (text, back): (String, Timestamp) = c
            .query_row("SELECT ?1, ?1", [t], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(text, "2026-01-02T03:04:06.506Z");
        assert_eq!(back, t);
    }
}
