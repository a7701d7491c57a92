//! The registrar (phase two): turns a stored object (a finished upload, or
//! an object at a storage path) into an image file. It resolves the
//! reference, checks the caller may use it, obtains the digests (recorded at
//! upload time when the object is unchanged since, else by streaming it
//! once), compares them with what the client stated, and moves or copies
//! the bytes into the image's own immutable location. Jobs are rows in
//! SQLite and are resumed after a restart. No image is ever activated with
//! bytes that were not verified.

mod outcome;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::registrations::{Compression, Job, JobKind, JobSource, JobState};
use crate::db::uploads::{ClaimRefused, Upload, UploadState};
use crate::db::{Db, DbError};
use crate::digest::Digests;
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::lease::Lease;
use crate::locks::ImageLocks;
use crate::manifest::{COMPRESSIONS, Image, Placeholder};
use crate::store::namespace;
use crate::store::{Move, StoreName, Stores, image_file_key, ingest};
use crate::uploads::{Uploads, stamp};

/// Where registered image files go.
const DEST_STOR: StoreName = StoreName::Manta;

/// A file reference of a registration (`files[0]`) or attach.
#[derive(Debug, Clone, Default)]
pub struct FileRef {
    pub upload: Option<Uuid>,
    pub path: Option<String>,
    pub content_md5: Option<String>,
    pub compression: Option<String>,
    pub sha1: Option<String>,
    pub size: Option<u64>,
    pub dataset_guid: Option<String>,
}

/// The registrar service.
#[derive(Clone)]
pub struct Registrar {
    db: Db,
    stores: Stores,
    uploads: Uploads,
    locks: ImageLocks,
    max_file_size: u64,
    placeholder_lifespan_days: u64,
    running: Arc<Mutex<HashSet<Uuid>>>,
    clock: Clock,
    quotas: crate::space::Quotas,
}

/// Why a job could not finish: for good, or for now.
enum JobError {
    Permanent(Error),
    Retry(Error),
}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        match e {
            Error::ChecksumMismatch { .. } | Error::FileNotFound(_) | Error::Upload(_) => {
                JobError::Permanent(e)
            }
            e => JobError::Retry(e),
        }
    }
}

impl From<crate::digest::DigestError> for JobError {
    fn from(e: crate::digest::DigestError) -> Self {
        JobError::from(Error::from(e))
    }
}

impl From<crate::store::StoreError> for JobError {
    /// The registrar decides from the store's own error whether a job can
    /// succeed later: a missing source or an oversized object will not
    /// change; anything else (the backend down, a lost multipart upload, a
    /// full disk, an I/O error) may. Only then is it mapped to a domain
    /// error, for the image's `error` field.
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        let permanent = matches!(e, S::CopySourceNotFound { .. } | S::TooLarge { .. });
        let e = Error::from(e);
        if permanent {
            JobError::Permanent(e)
        } else {
            JobError::Retry(e)
        }
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::from(Error::from(e))
    }
}

/// Give up on transient errors after this many attempts.
const MAX_ATTEMPTS: u32 = 5;

fn mismatch(field: &str, stated: &str, actual: &str) -> Error {
    Error::ChecksumMismatch {
        message: format!("stated {field} {stated} does not match the stored bytes ({actual})"),
        errors: vec![FieldError::msg(
            field,
            FieldCode::Mismatch,
            format!("stored bytes have {actual}"),
        )],
    }
}

/// The wire error for an upload that could not be claimed.
fn claim_refused(id: Uuid, r: ClaimRefused) -> Error {
    match r {
        ClaimRefused::Unknown => Error::UploadNotFound(id),
        ClaimRefused::Registered(image) => Error::FileInUse(format!(
            "upload {id} is already registered to image {}",
            image.map(|i| i.to_string()).unwrap_or_default()
        )),
        ClaimRefused::Failed => Error::ChecksumMismatch {
            message: format!("upload {id} failed its content_md5 check"),
            errors: vec![FieldError::new("content_md5", FieldCode::Mismatch)],
        },
        ClaimRefused::Incomplete => Error::UploadIncomplete(id),
    }
}

/// Compare stated digests with actual ones.
fn compare(job: &Job, d: &Digests) -> Result<()> {
    if job.content_md5 != d.md5_base64() {
        return Err(mismatch("content_md5", &job.content_md5, &d.md5_base64()));
    }
    if let Some(s) = &job.sha1
        && !s.eq_ignore_ascii_case(&d.sha1_hex())
    {
        return Err(mismatch("sha1", s, &d.sha1_hex()));
    }
    if let Some(n) = job.size
        && n != d.size
    {
        return Err(mismatch("size", &n.to_string(), &d.size.to_string()));
    }
    if d.size == 0 {
        return Err(Error::Upload(
            "image file size is 0 bytes, empty files are not allowed".into(),
        ));
    }
    Ok(())
}

impl Registrar {
    pub fn new(
        db: Db,
        stores: Stores,
        uploads: Uploads,
        locks: ImageLocks,
        max_file_size: u64,
        placeholder_lifespan_days: u64,
        clock: Clock,
    ) -> Registrar {
        Registrar {
            db,
            stores,
            uploads,
            locks,
            max_file_size,
            placeholder_lifespan_days,
            running: Arc::new(Mutex::new(HashSet::new())),
            clock,
            quotas: crate::space::Quotas::default(),
        }
    }

    /// This registrar, holding registrations to `quotas` (none by default).
    pub fn with_quotas(mut self, quotas: crate::space::Quotas) -> Registrar {
        self.quotas = quotas;
        self
    }

    /// Check a reference's own fields (before anything is looked up). Without
    /// `need_file` (a validate-only request, made before the file is
    /// uploaded), the upload or path and `content_md5` may be absent, and
    /// what is given must still be well formed.
    pub fn check_ref_fields(r: &FileRef, need_file: bool) -> Result<()> {
        let mut errs = Vec::new();
        match (&r.upload, &r.path) {
            (None, None) if !need_file => {}
            (None, None) => errs.push(FieldError::msg(
                "files[0]",
                FieldCode::MissingParameter,
                "needs \"upload\" or \"path\"",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::msg(
                "files[0]",
                FieldCode::Invalid,
                "give \"upload\" or \"path\", not both",
            )),
            _ => {}
        }
        match r.content_md5.as_deref() {
            None if !need_file => {}
            None | Some("") => errs.push(FieldError::new(
                "files[0].content_md5",
                FieldCode::MissingParameter,
            )),
            Some(m) => {
                let ok = base64::engine::general_purpose::STANDARD
                    .decode(m)
                    .is_ok_and(|d| d.len() == 16);
                if !ok {
                    errs.push(FieldError::msg(
                        "files[0].content_md5",
                        FieldCode::Invalid,
                        "must be a base64 MD5 digest",
                    ));
                }
            }
        }
        match r.compression.as_deref() {
            None | Some("") => errs.push(FieldError::new(
                "files[0].compression",
                FieldCode::MissingParameter,
            )),
            Some(c) if !COMPRESSIONS.contains(&c) => errs.push(FieldError::msg(
                "files[0].compression",
                FieldCode::Invalid,
                format!("must be one of {}", COMPRESSIONS.join(", ")),
            )),
            _ => {}
        }
        if let Some(s) = &r.sha1
            && (s.len() != 40 || !s.chars().all(|c| c.is_ascii_hexdigit()))
        {
            errs.push(FieldError::msg(
                "files[0].sha1",
                FieldCode::Invalid,
                "must be 40 hex digits",
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(errs))
        }
    }

    /// Resolve the reference into a job (not yet stored). The digests are
    /// compared at once when they are known (a finished upload).
    async fn resolve(
        &self,
        caller: &Caller,
        image: Uuid,
        kind: JobKind,
        r: &FileRef,
        activate: bool,
    ) -> Result<Job> {
        Self::check_ref_fields(r, true)?;
        let mut job = self.pending_job(image, kind, r, activate)?;
        if let Some(id) = r.upload {
            let up = self.uploads.get(caller, id).await?;
            check_upload_registrable(&up)?;
            job.source = JobSource::Upload;
            job.upload_id = Some(id);
            job.store = Some(up.store);
            job.source_key = up.data_key.clone();
            if self.trusted_digests(&up).await?.is_some() {
                compare(&job, &up.hash.digests()?)?;
            }
        } else if let Some(p) = &r.path {
            let sp = namespace::parse(p)
                .map_err(|m| Error::invalid_param("files[0].path", FieldCode::Invalid, m))?;
            self.uploads.check_path_access(caller, &sp).await?;
            let store = self.stores.get(sp.store());
            if store.head(&sp.key).await?.is_none() {
                return Err(Error::FileNotFound(format!("{p} does not exist")));
            }
            job.source = JobSource::Path;
            job.store = Some(sp.store());
            job.source_key = sp.key;
        }
        Ok(job)
    }

    /// The pending job of the reference `r` for `image`, as the client
    /// stated it (its source not yet resolved).
    fn pending_job(&self, image: Uuid, kind: JobKind, r: &FileRef, activate: bool) -> Result<Job> {
        let now = self.clock.timestamp();
        Ok(Job {
            image_uuid: image,
            kind,
            source: if r.upload.is_some() {
                JobSource::Upload
            } else {
                JobSource::Path
            },
            upload_id: None,
            store: None,
            source_key: String::new(),
            content_md5: r.content_md5.clone().unwrap_or_default(),
            sha1: r.sha1.clone().map(|s| s.to_ascii_lowercase()),
            size: r.size,
            compression: Compression::parse(r.compression.as_deref().unwrap_or_default())
                .ok_or_else(|| Error::internal("compression not checked"))?,
            dataset_guid: r.dataset_guid.clone().filter(|g| !g.is_empty()),
            activate,
            state: JobState::Pending,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// The digests recorded for an upload, if its bytes are certainly the
    /// ones hashed: in the private upload area, or at a path unchanged since.
    async fn trusted_digests(&self, up: &Upload) -> Result<Option<Digests>> {
        if up.path.is_none() {
            return Ok(Some(up.hash.digests()?));
        }
        let meta = self.stores.get(up.store).head(&up.data_key).await?;
        match (meta, &up.data_mtime) {
            (Some(m), Some(s)) if stamp(&m) == *s => Ok(Some(up.hash.digests()?)),
            _ => Ok(None),
        }
    }

    /// The bytes of a registration's file at a path (counted by quotas
    /// when it becomes an image's); 0 for an upload's (counted already).
    async fn path_bytes(&self, job: &Job) -> Result<u64> {
        match (job.source, job.store) {
            (JobSource::Path, Some(store)) => Ok(self
                .stores
                .get(store)
                .head(&job.source_key)
                .await?
                .map_or(0, |m| m.size)),
            _ => Ok(0),
        }
    }

    /// Registration: `POST /images` whose `files[0]` references a stored
    /// object. `img` is the validated, unactivated image to create.
    pub async fn register(
        &self,
        caller: &Caller,
        mut img: Image,
        r: FileRef,
        activate: bool,
        wait: Duration,
    ) -> Result<Image> {
        caller.require_auth()?;
        let job = self
            .resolve(caller, img.uuid, JobKind::Register, &r, activate)
            .await?;
        img.placeholder = Some(Placeholder::Creating);
        // The image, and a file already in the store at a path: an
        // upload's bytes were counted when it was created and move to the
        // image.
        let entry = crate::space::Entry {
            owner: img.owner,
            bytes: self.path_bytes(&job).await?,
            images: 1,
            what: format!("registering image {}", img.uuid),
        };
        let quotas = self.quotas.clone();
        let uuid = img.uuid;
        let row = job.clone();
        let origin = img.origin;
        let origin_caller = caller.clone();
        let clock = self.clock.clone();
        self.db
            .write(move |c| {
                if let Some(o) = origin {
                    crate::images::check_origin(c, &origin_caller, o)?;
                }
                // An upload of another account (an operator's own has
                // none) brings its bytes to this one.
                let mut entry = entry;
                if let Some(id) = row.upload_id
                    && let Some(up) = c.upload_get(id)?
                    && up.owner != Some(img.owner)
                {
                    entry.bytes = entry.bytes.saturating_add(up.length);
                }
                quotas.admit(c, &origin_caller, &entry)?;
                // Counted as the image's until its job ends, so that a
                // registration admitted after this one sees them.
                img.reserved_bytes = Some(entry.bytes).filter(|&n| n > 0);
                c.image_insert(&img).map_err(Error::uuid_taken(img.uuid))?;
                if let Some(id) = row.upload_id {
                    c.upload_mark_registered(id, row.image_uuid, clock.timestamp())?
                        .map_err(|r| claim_refused(id, r))?;
                }
                Ok::<_, Error>(c.job_insert(&row)?)
            })
            .await?;
        self.run_or_wait(job, wait).await?;
        let img = self.db.read(move |c| c.image_get(uuid)).await?;
        img.ok_or_else(|| {
            Error::not_found(format!(
                "image {uuid} was deleted while it was being registered"
            ))
        })
    }

    /// `PUT /images/{uuid}/file?upload={id}`: attach a finished upload to an
    /// unactivated image, with AddImageFile's checks; moved, not re-uploaded.
    pub async fn attach(&self, caller: &Caller, img: &Image, r: FileRef) -> Result<Image> {
        caller.check_owner(img)?;
        if img.activated {
            return Err(Error::ImageFilesImmutable(img.uuid));
        }
        let uuid = img.uuid;
        let mut r = r;
        if r.content_md5.is_none()
            && let Some(id) = r.upload
        {
            // AddImageFile states no md5: the upload's own must hold.
            r.content_md5 = self.uploads.get(caller, id).await?.md5;
            if r.content_md5.is_none() {
                return Err(Error::UploadIncomplete(id));
            }
        }
        let job = self
            .resolve(caller, uuid, JobKind::Attach, &r, false)
            .await?;
        let row = job.clone();
        let clock = self.clock.clone();
        self.db
            .write(move |c| {
                if c.job_get(uuid)?.is_some() {
                    return Err(Error::FileInUse(format!(
                        "image {uuid} has a registration in progress"
                    )));
                }
                if let Some(id) = row.upload_id {
                    c.upload_mark_registered(id, row.image_uuid, clock.timestamp())?
                        .map_err(|r| claim_refused(id, r))?;
                }
                Ok(c.job_insert(&row)?)
            })
            .await?;
        // An attach is synchronous: the caller gets the outcome.
        self.run_or_wait(job, Duration::from_secs(3600)).await?;
        let img = self.db.read(move |c| c.image_get(uuid)).await?;
        img.ok_or_else(|| Error::not_found(format!("image {uuid} was deleted meanwhile")))
    }

    /// Run the job now; if it does not finish within `wait`, leave it to the
    /// worker. A job that failed within `wait` is reported as its error and
    /// leaves nothing behind.
    async fn run_or_wait(&self, job: Job, wait: Duration) -> Result<()> {
        let uuid = job.image_uuid;
        let me = self.clone();
        let task = tokio::spawn(async move { me.run(job).await });
        let finished = tokio::time::timeout(wait, task).await;
        if finished.is_err() {
            return Ok(()); // still running: the caller gets the `creating` image
        }
        let job = self.db.read(move |c| c.job_get(uuid)).await?;
        match job {
            Some(j) if j.state == JobState::Failed => {
                let err = self.forget_failed(&j).await?;
                Err(err)
            }
            _ => Ok(()),
        }
    }

    /// A job the caller is told about directly: remove the placeholder (or
    /// leave the attached-to image as it was), the job row, and give the
    /// upload back.
    async fn forget_failed(&self, j: &Job) -> Result<Error> {
        let job = j.clone();
        let _g = self.locks.lock(job.image_uuid).await?;
        let kind = job.kind;
        self.db
            .write(move |c| {
                if kind == JobKind::Register {
                    c.image_delete(job.image_uuid)?;
                }
                c.job_delete(job.image_uuid)?;
                if let Some(id) = job.upload_id {
                    c.upload_unmark_registered(id, job.image_uuid)?;
                }
                Ok::<_, Error>(())
            })
            .await?;
        let code = j.error_code.clone().unwrap_or_default();
        let msg = j.error_message.clone().unwrap_or_default();
        Ok(match code.as_str() {
            "ChecksumMismatch" => {
                let field = msg
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("content_md5")
                    .to_string();
                Error::ChecksumMismatch {
                    message: msg,
                    errors: vec![FieldError::new(field, FieldCode::Mismatch)],
                }
            }
            "FileNotFound" => Error::FileNotFound(msg),
            "Upload" => Error::Upload(msg),
            _ => Error::internal(format!("registration failed: {code}: {msg}")),
        })
    }

    /// Run one job unless it is already running, here or on another node
    /// (the job's lease: a node that dies or freezes mid-job loses it, and
    /// another node runs the job again; every step is idempotent).
    async fn run(&self, job: Job) {
        let uuid = job.image_uuid;
        {
            let Ok(mut r) = self.running.lock() else {
                return;
            };
            if !r.insert(uuid) {
                return;
            }
        }
        match Lease::claim(&self.db, format!("job:{uuid}")).await {
            Ok(Some(lease)) => {
                let outcome = self.execute(&job).await;
                if let Err(e) = self.settle(&job, outcome, lease.fence()).await {
                    tracing::error!(image.uuid = %uuid, error = %e, "registrar could not record a job outcome");
                }
            }
            Ok(None) => tracing::debug!(image.uuid = %uuid, "the job runs on another node"),
            Err(e) => tracing::warn!(image.uuid = %uuid, error = %e, "could not claim a job"),
        }
        if let Ok(mut r) = self.running.lock() {
            r.remove(&uuid);
        }
    }

    /// Do the work: obtain verified bytes at the image's location.
    async fn execute(&self, job: &Job) -> std::result::Result<(Digests, bool), JobError> {
        let uuid = job.image_uuid;
        let attempt = {
            let u = uuid;
            self.db.write(move |c| c.job_bump_attempts(u)).await?
        };
        let dest = self.stores.get(DEST_STOR);
        let dest_key = image_file_key(DEST_STOR, &uuid);
        // (A row naming no store fails, and is retried, as any other job.)
        let src_name = job
            .store
            .ok_or_else(|| Error::internal("the job names no known store"))?;
        let src_store = self.stores.get(src_name);
        // Fast path: a finished upload in the private upload area is moved.
        if job.source == JobSource::Upload {
            let up = {
                let id = job
                    .upload_id
                    .ok_or_else(|| Error::internal("upload job without upload"))?;
                self.db.read(move |c| c.upload_get(id)).await?
            };
            let up = up.ok_or_else(|| Error::FileNotFound("the upload no longer exists".into()))?;
            if up.path.is_none() {
                let d = up.hash.digests()?;
                compare(job, &d)?;
                // The upload's bytes move into the image's place where the
                // store can do that itself (a rename; a server-side copy).
                match self
                    .stores
                    .move_object(src_name, &job.source_key, DEST_STOR, &dest_key)
                    .await?
                {
                    Move::Moved | Move::AlreadyThere => return Ok((d, true)),
                    Move::SourceGone => {
                        return Err(JobError::Permanent(Error::FileNotFound(
                            "the upload's bytes are gone".into(),
                        )));
                    }
                    Move::NotHere => {}
                }
            }
        }
        // Slow path: stream the object once, hashing it into the image's
        // own location; committed only if the digests match.
        tracing::info!(image.uuid = %uuid, attempt, source = %job.source_key, "verifying by streaming");
        let before = src_store.head(&job.source_key).await?;
        if before.is_none() {
            return Err(JobError::Permanent(Error::FileNotFound(format!(
                "{} does not exist",
                job.source_key
            ))));
        }
        let body = src_store.get(&job.source_key, None).await?;
        if dest.supports_server_side_copy() && src_store.same_place(dest) {
            // Same object store: verify by streaming, then a server-side
            // copy conditioned on the ETag that was verified.
            let body = futures_util::TryStreamExt::map_err(body, Error::from);
            let d = crate::store::hash_stream(body, self.max_file_size).await?;
            compare(job, &d)?;
            let etag = before.and_then(|m| m.etag);
            dest.copy_within(&job.source_key, &dest_key, etag.as_deref())
                .await?;
            return Ok((d, false));
        }
        dest.remove_stale(&dest_key).await?; // an attempt killed by a crash
        let mut pending = dest.begin_write(&dest_key).await?;
        let body = futures_util::TryStreamExt::map_err(body, Error::from);
        let d = ingest(&mut pending, body, self.max_file_size).await?;
        let after = src_store.head(&job.source_key).await?;
        if before.map(|m| stamp(&m)) != after.map(|m| stamp(&m)) {
            return Err(JobError::Retry(Error::internal(
                "the object changed while it was being verified",
            )));
        }
        compare(job, &d)?;
        pending.commit().await?;
        Ok((d, false))
    }

    /// Run every pending job (start-up, and periodically for retries).
    pub async fn run_pending(&self) -> Result<usize> {
        let pending = self.db.read(|c| c.job_pending()).await?;
        let n = pending.len();
        for j in pending {
            self.run(j).await;
        }
        Ok(n)
    }

    /// The background worker: resumes jobs after a restart and retries.
    pub async fn work_forever(self) {
        loop {
            if let Err(e) = self.run_pending().await {
                tracing::warn!(error = %e, "registrar worker failed");
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }
}

/// Refuse an upload that cannot become an image file: still uploading,
/// already registered, or failed (its content_md5 check, or otherwise).
fn check_upload_registrable(up: &Upload) -> Result<()> {
    let id = up.id;
    match up.state {
        UploadState::Uploading => Err(Error::UploadIncomplete(id)),
        UploadState::Registered => Err(Error::FileInUse(format!(
            "upload {id} is already registered to an image"
        ))),
        UploadState::Failed
            if up
                .error
                .as_deref()
                .is_some_and(|e| e.contains("content_md5")) =>
        {
            Err(Error::ChecksumMismatch {
                message: format!("upload {id} failed its content_md5 check"),
                errors: vec![FieldError::new("content_md5", FieldCode::Mismatch)],
            })
        }
        UploadState::Failed => Err(Error::invalid_param(
            "files[0].upload",
            FieldCode::Invalid,
            format!(
                "upload {id} failed: {}",
                up.error.as_deref().unwrap_or("unknown reason")
            ),
        )),
        UploadState::Complete => Ok(()),
    }
}
