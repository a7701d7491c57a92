//! Imports from another IMGAPI (ours or Triton's, over the wire API):
//! AdminImportImageFromSource, AddImageFileFromSource and the durable
//! AdminImportRemoteImage jobs (origins first; the file streamed once into
//! a store session in the image's store while it is hashed, resumed with
//! `Range` after a cut, verified, then completed in place by the images
//! service). Owns the source allow-list, the remote client and the jobs'
//! worker.

mod remote;
mod transfer;

use transfer::{Download, remove_file};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::ImportsConfig;
use crate::db::Db;
use crate::db::imports::{Execution, ImportJob};
use crate::digest::{Digests, StreamHasher};
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::images::{AddFileParams, Images};
use crate::manifest::{Image, now_iso};
use crate::store::{SessionState, SessionWriter, StoreName};

pub use remote::Source;
use remote::{Fail, RemoteFile};

/// The task name of import jobs (GetImageJobs `?task=`).
pub const TASK: &str = "import-remote-image";

/// Origins followed at most when planning an import (IMGAPI: 100).
const MAX_ORIGIN_DEPTH: usize = 100;

/// Staged bytes between two saved offsets.
const CHECKPOINT_BYTES: u64 = 8 << 20;

/// The fencing token an import's session writers pass: its bytes are
/// staged on the node running the job (`Stores::staging_for`), never kept
/// as pieces that a fence names.
const STAGED: i64 = 0;

/// Where transfers stage their bytes in a directory store (the image's own
/// store when it is one, else the staging store): no image key and no
/// upload area, so `gc` and `check-files` leave it alone.
const STAGE_AREA: &str = "imgapi/imports/";

/// Received bytes gathered before they go to the hashing threads and the
/// writer (one hand-off per MiB, not one per network read).
const GATHER: usize = 1 << 20;

/// The import service.
#[derive(Clone)]
pub struct Imports {
    db: Db,
    images: Images,
    remote: remote::Client,
    cfg: Arc<ImportsConfig>,
    max_file_size: u64,
    /// The staging directory of earlier versions (swept at start-up).
    staging: PathBuf,
    running: Arc<Mutex<HashSet<Uuid>>>,
    wake: Arc<tokio::sync::Notify>,
    /// AddImageFileFromSource transfers in progress.
    transfers: Arc<tokio::sync::Semaphore>,
}

/// What an import needs of a source's file: from `files[0]` of its manifest.
#[derive(Debug, Clone)]
struct FileSpec {
    sha1: String,
    size: u64,
    compression: String,
    dataset_guid: Option<String>,
}

impl Imports {
    /// `staging` is a directory of this service's own (staged downloads).
    pub fn new(
        db: Db,
        images: Images,
        cfg: ImportsConfig,
        max_file_size: u64,
        staging: PathBuf,
    ) -> Result<Imports> {
        std::fs::create_dir_all(&staging).map_err(Error::internal)?;
        Ok(Imports {
            db,
            images,
            remote: remote::Client::new(&cfg)?,
            transfers: Arc::new(tokio::sync::Semaphore::new(cfg.max_file_transfers)),
            cfg: Arc::new(cfg),
            max_file_size,
            staging,
            running: Arc::new(Mutex::new(HashSet::new())),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The `workflow-api` base URL configured, if any.
    pub fn workflow_api_url(&self) -> Option<&str> {
        self.cfg.workflow_api_url.as_deref()
    }

    /// Check `?source=` against the allow-list; no connection is made.
    pub fn source(&self, raw: Option<&str>) -> Result<Source> {
        Source::check(raw, &self.cfg.allowed_sources)
    }

    /// AdminImportImageFromSource: `POST /images/{uuid}?action=import&source=`.
    pub async fn import_from_source(
        &self,
        caller: &Caller,
        uuid: Uuid,
        src: &Source,
        channels: Vec<String>,
    ) -> Result<Image> {
        caller.require_operator()?;
        let m = self.remote.manifest(src, uuid).await?;
        self.images
            .import(caller, uuid, importable(m), channels)
            .await
    }

    /// AddImageFileFromSource: `PUT /images/{uuid}/file?source=`: the file
    /// of the same image at the source, verified, into this image.
    pub async fn add_file_from_source(
        &self,
        caller: &Caller,
        uuid: Uuid,
        src: &Source,
        storage: Option<String>,
    ) -> Result<Image> {
        caller.require_auth()?;
        let img = self.images.get(caller, uuid).await?;
        caller.check_owner(&img)?;
        if img.activated {
            return Err(Error::ImageFilesImmutable(uuid));
        }
        let _slot = self.transfers.try_acquire().map_err(|_| {
            Error::TooManyRequests(
                "too many file transfers from sources in progress; retry later".into(),
            )
        })?;
        let m = self.remote.manifest(src, uuid).await?;
        let spec = self.file_spec(uuid, &m)?;
        self.images.admit_file(caller, uuid, spec.size).await?;
        let stage = self.stage(
            caller,
            storage.as_deref(),
            format!("file-{uuid}-{}.part", Uuid::new_v4()),
        )?;
        let res = async {
            let mut d = Download::new(stage.clone(), 0, None, 0);
            let (digests, session) = self.download(src, uuid, &spec, &mut d, None).await?;
            self.hand_over(caller, uuid, &spec, &stage, &session, &digests, storage)
                .await
        }
        .await;
        self.unstage(&stage).await;
        res
    }

    /// AdminImportRemoteImage: plan (origins missing here, each active at
    /// the source) and queue a job. A job already queued or running for
    /// the image is returned instead of a second one.
    pub async fn import_remote(
        &self,
        caller: &Caller,
        uuid: Uuid,
        src: Source,
        channels: Vec<String>,
        skip_owner_check: bool,
    ) -> Result<ImportJob> {
        caller.require_operator()?;
        if let Some(j) = self
            .db
            .read(move |c| c.import_active_for_image(uuid))
            .await?
        {
            return Ok(j);
        }
        if self.local(uuid).await?.is_some() {
            return Err(Error::ImageUuidAlreadyExists(uuid));
        }
        let (plan, total) = self.plan_import(uuid, &src).await?;
        let job = ImportJob {
            job_uuid: Uuid::new_v4(),
            image_uuid: uuid,
            task: TASK.into(),
            source: src.as_str().to_string(),
            skip_owner_check,
            channels,
            plan,
            created: vec![],
            execution: Execution::Queued,
            current_image: None,
            file_offset: 0,
            content_md5: None,
            bytes_received: 0,
            bytes_total: total,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: now_iso(),
            started_at: None,
            finished_at: None,
        };
        self.queue_import(job).await
    }

    /// The images to import for `uuid` from `src`, origins first: its
    /// origins up to the first one here (which must be active), each
    /// active at the source; and their files' total size, if every
    /// manifest gives it.
    async fn plan_import(&self, uuid: Uuid, src: &Source) -> Result<(Vec<Uuid>, Option<u64>)> {
        let m = self.remote.manifest(src, uuid).await?;
        let mut plan = vec![uuid];
        let mut total = self.file_spec(uuid, &m).map(|s| s.size).ok();
        let mut next = origin_of(&m);
        while let Some(o) = next {
            if plan.len() > MAX_ORIGIN_DEPTH {
                return Err(Error::RemoteSourceError(format!(
                    "image {uuid} has more than {MAX_ORIGIN_DEPTH} origins at the source"
                )));
            }
            if plan.contains(&o) {
                return Err(Error::RemoteSourceError(format!(
                    "the origins of image {uuid} at the source form a cycle"
                )));
            }
            if let Some(local) = self.local(o).await? {
                if !local.activated {
                    return Err(Error::OriginIsNotActive(o));
                }
                break;
            }
            let om = self.remote.manifest(src, o).await.map_err(|e| match e {
                Error::RemoteSourceError(m) => Error::RemoteSourceError(format!(
                    "Unable to get manifest for origin image {o}. {m}"
                )),
                e => e,
            })?;
            if om.get("state").and_then(Value::as_str) != Some("active") {
                return Err(Error::OriginIsNotActive(o));
            }
            total = match (total, self.file_spec(o, &om)) {
                (Some(t), Ok(s)) => Some(t + s.size),
                _ => None,
            };
            plan.insert(0, o);
            next = origin_of(&om);
        }
        Ok((plan, total))
    }

    /// Store the new `job` and wake the worker, unless a job for its
    /// image became active meanwhile: that one is returned instead.
    async fn queue_import(&self, job: ImportJob) -> Result<ImportJob> {
        let uuid = job.image_uuid;
        let new = job.clone();
        let existing = self
            .db
            .write(move |c| {
                if let Some(active) = c.import_active_for_image(uuid)? {
                    return Ok(Some(active));
                }
                c.import_insert(&new)?;
                Ok::<_, crate::db::DbError>(None)
            })
            .await?;
        if let Some(active) = existing {
            return Ok(active);
        }
        self.wake.notify_one();
        Ok(job)
    }

    /// GET /jobs/{uuid}.
    pub async fn job(&self, job: Uuid) -> Result<ImportJob> {
        self.db
            .read(move |c| c.import_get(job))
            .await?
            .ok_or_else(|| Error::not_found(format!("job \"{job}\" does not exist")))
    }

    /// GetImageJobs: the image's jobs, newest first.
    pub async fn image_jobs(
        &self,
        image: Uuid,
        execution: Option<Execution>,
    ) -> Result<Vec<ImportJob>> {
        Ok(self
            .db
            .read(move |c| c.import_list_for_image(image, execution))
            .await?)
    }

    async fn local(&self, uuid: Uuid) -> Result<Option<Image>> {
        Ok(self.db.read(move |c| c.image_get(uuid)).await?)
    }

    fn file_spec(&self, uuid: Uuid, m: &Map<String, Value>) -> Result<FileSpec> {
        let f = m
            .get("files")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_object)
            .ok_or_else(|| {
                Error::RemoteSourceError(format!("image {uuid} has no file at the source"))
            })?;
        let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
        let bad = |what: &str| {
            Error::RemoteSourceError(format!(
                "the source's manifest of image {uuid} has no valid files[0].{what}"
            ))
        };
        let sha1 = s("sha1")
            .filter(|hex| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("sha1"))?
            .to_ascii_lowercase();
        let size = f
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("size"))?;
        if size > self.max_file_size {
            return Err(Error::Upload(format!(
                "image file size, {size} (at the source) exceeds the maximum allowed size, {}",
                self.max_file_size
            )));
        }
        let compression = s("compression").ok_or_else(|| bad("compression"))?;
        Ok(FileSpec {
            sha1,
            size,
            compression,
            dataset_guid: s("dataset_guid"),
        })
    }

    /// Run one job (unless it already runs here) and record its outcome.
    async fn run(&self, job: ImportJob) {
        let id = job.job_uuid;
        {
            let Ok(mut r) = self.running.lock() else {
                return;
            };
            if !r.insert(id) {
                return;
            }
        }
        // One node runs a job at a time; a node that dies or freezes loses
        // the job's lease and another node resumes the job.
        match crate::lease::Lease::claim(&self.db, format!("import:{id}")).await {
            Ok(Some(_lease)) => {
                let outcome = self.execute(id).await;
                if let Err(e) = self.settle(id, outcome).await {
                    tracing::error!(job.uuid = %id, error = %e, "could not record an import job's outcome");
                }
            }
            Ok(None) => tracing::debug!(job.uuid = %id, "the import runs on another node"),
            Err(e) => tracing::warn!(job.uuid = %id, error = %e, "could not claim an import job"),
        }
        if let Ok(mut r) = self.running.lock() {
            r.remove(&id);
        }
    }

    async fn execute(&self, id: Uuid) -> Result<()> {
        let now = now_iso();
        self.db.write(move |c| c.import_start(id, &now)).await?;
        let job = self.job(id).await?;
        let src = Source::check(Some(&job.source), &self.cfg.allowed_sources)?;
        let op = Caller::operator();
        for &uuid in &job.plan {
            let job = self.job(id).await?;
            let img = match self.local(uuid).await? {
                Some(img) if img.activated => continue,
                Some(img) if job.created.contains(&uuid) => img,
                Some(_) if uuid == job.image_uuid => {
                    return Err(Error::ImageUuidAlreadyExists(uuid));
                }
                Some(_) => return Err(Error::OriginIsNotActive(uuid)),
                None => {
                    let m = self.remote.manifest(&src, uuid).await?;
                    if uuid != job.image_uuid
                        && m.get("state").and_then(Value::as_str) != Some("active")
                    {
                        return Err(Error::OriginIsNotActive(uuid));
                    }
                    self.db
                        .write(move |c| c.import_add_created(id, uuid))
                        .await?;
                    self.images
                        .import(&op, uuid, importable(m), job.channels.clone())
                        .await?
                }
            };
            if img.files.is_empty() {
                let m = self.remote.manifest(&src, uuid).await?;
                let spec = self.file_spec(uuid, &m)?;
                self.images.admit_file(&op, uuid, spec.size).await?;
                let stage = self.job_stage(id, uuid)?;
                let (offset, md5) = match job.current_image {
                    Some(c) if c == uuid => (job.file_offset, job.content_md5.clone()),
                    _ => (0, None),
                };
                let mut d = Download::new(stage.clone(), offset, md5, job.bytes_received);
                let (digests, session) = self.download(&src, uuid, &spec, &mut d, Some(id)).await?;
                self.hand_over(&op, uuid, &spec, &stage, &session, &digests, None)
                    .await?;
                self.unstage(&stage).await;
                let recv = d.received;
                self.db
                    .write(move |c| c.import_checkpoint(id, None, 0, None, recv))
                    .await?;
            }
            self.images.activate(&op, uuid).await?;
        }
        Ok(())
    }

    /// Record a job's end. A failed job removes what it created (newest
    /// first) and its staged bytes, so nothing half-imported stays.
    async fn settle(&self, id: Uuid, outcome: Result<()>) -> Result<()> {
        let job = self.job(id).await?;
        for image in &job.plan {
            if let Ok(stage) = self.job_stage(id, *image) {
                self.unstage(&stage).await;
            }
        }
        let now = now_iso();
        match outcome {
            Ok(()) => {
                self.db
                    .write(move |c| c.import_finish(id, Execution::Succeeded, None, &now))
                    .await?;
                tracing::info!(job.uuid = %id, image.uuid = %job.image_uuid, "import job succeeded");
            }
            Err(e) => {
                tracing::warn!(job.uuid = %id, image.uuid = %job.image_uuid, error = %e, "import job failed");
                for image in job.created.iter().rev() {
                    match self.images.delete(&Caller::operator(), *image).await {
                        Ok(()) | Err(Error::ResourceNotFound(_)) => {}
                        Err(e) => {
                            tracing::warn!(image.uuid = %image, error = %e, "could not remove an image of a failed import")
                        }
                    }
                }
                let code = e.code().to_string();
                let message = if e.status() >= 500 && !matches!(e, Error::RemoteSourceError(_)) {
                    "internal error".to_string()
                } else {
                    e.to_string()
                };
                self.db
                    .write(move |c| {
                        c.import_finish(id, Execution::Failed, Some((&code, &message)), &now)
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Run every unfinished job once.
    pub async fn run_pending(&self) -> Result<usize> {
        let jobs = self.db.read(|c| c.import_unfinished()).await?;
        let n = jobs.len();
        for j in jobs {
            self.run(j).await;
        }
        Ok(n)
    }

    /// Remove staged files no transfer owns any more: those of
    /// AddImageFileFromSource requests a crash cut short, and those of
    /// jobs that are over (in the stage areas of the directory stores, and
    /// in the staging directory earlier versions used). Run at start-up,
    /// before the worker resumes jobs.
    pub async fn sweep_staging(&self) -> Result<usize> {
        let live: HashSet<String> = self
            .db
            .read(|c| c.import_unfinished())
            .await?
            .iter()
            .map(|job| format!("job-{}-", job.job_uuid))
            .collect();
        let owned =
            |name: &str| name.starts_with("job-") && live.iter().any(|p| name.starts_with(p));
        let mut n = 0;
        let mut rd = tokio::fs::read_dir(&self.staging)
            .await
            .map_err(Error::internal)?;
        while let Some(e) = rd.next_entry().await.map_err(Error::internal)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".part") && !owned(&name) {
                remove_file(&e.path()).await;
                n += 1;
            }
        }
        let stores = &self.images.stores;
        let mut seen: Vec<&crate::store::Store> = Vec::new();
        for name in [StoreName::Local, StoreName::Manta, StoreName::Staging] {
            let store = stores.get(name);
            if !store.is_local() || seen.iter().any(|s| s.same_place(store)) {
                continue;
            }
            seen.push(store);
            for (key, _) in store.list(STAGE_AREA).await? {
                let file = key.rsplit('/').next().unwrap_or_default();
                if file.ends_with(".part") && !owned(file) {
                    if let Err(e) = store.delete(&key).await {
                        tracing::warn!(key = %key, error = %e, "could not remove staged import bytes");
                    }
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// The worker: resumes jobs after a restart and runs new ones, one at
    /// a time.
    pub async fn work_forever(self) {
        match self.sweep_staging().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed staged import files nothing owns"),
            Err(e) => tracing::warn!(error = %e, "could not sweep the import staging area"),
        }
        loop {
            match self.run_pending().await {
                Ok(n) if n > 0 => {
                    // New jobs may have come in meanwhile; a job whose
                    // outcome could not be recorded is not retried hot.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "import worker failed"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), self.wake.notified()).await;
        }
    }
}

fn origin_of(m: &Map<String, Value>) -> Option<Uuid> {
    m.get("origin")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A source's manifest as AdminImportImage takes it: without what the
/// import sets itself or this server does not take from a source
/// (channels, the icon flag).
fn importable(mut m: Map<String, Value>) -> Map<String, Value> {
    for k in ["channels", "icon", "state", "files", "error"] {
        m.remove(k);
    }
    m
}

/// `?execution=` of GetImageJobs (IMGAPI's values; `canceled` matches
/// nothing here).
pub fn parse_execution(v: &str) -> Result<Option<Execution>> {
    match v {
        "canceled" => Ok(None),
        v => Execution::parse(v)
            .map(Some)
            .ok_or_else(|| Error::InvalidParameter {
                message: format!("invalid \"execution\": \"{v}\""),
                errors: vec![FieldError::new("execution", FieldCode::Invalid)],
            }),
    }
}
