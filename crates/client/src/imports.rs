//! The import verbs: `import-dir` (seed images from a directory of
//! `*.imgmanifest` files and their image files, as a headnode does on first
//! boot: every manifest validated first, then AdminImportImage, resumable
//! upload, AddImageFile, activate; idempotent) and `import-remote` (drive the server's
//! AdminImportRemoteImage job and follow it to its end).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::error::{ClientError, Result, local};
use super::http::{Attempt, Http};
use super::images::{get_image, guess_compression};
use super::output;
use super::tus;
use super::types::{ErrorBody, Image, ImportStarted, Job, JobChainError, Parsed, image_failure};

/// Image file names tried beside `NAME.imgmanifest`, in this order.
const FILE_SUFFIXES: &[&str] = &[
    ".zfs.gz", ".zfs.bz2", ".zfs.xz", ".zfs", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar",
    ".gz", ".bz2", ".xz", ".file",
];

/// Time allowed for the server to attach an upload (it verifies the bytes).
const ATTACH_WAIT: Duration = Duration::from_secs(3600);

/// One `*.imgmanifest` of the directory and its image file.
#[derive(Debug)]
pub struct Seed {
    pub manifest_path: PathBuf,
    pub manifest: Map<String, Value>,
    pub uuid: String,
    pub file: Option<PathBuf>,
}

impl Seed {
    fn field(&self, k: &str) -> String {
        self.manifest
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    fn file0(&self) -> Option<&Map<String, Value>> {
        self.manifest.get("files")?.as_array()?.first()?.as_object()
    }
}

/// The image file of `manifest`: the base name its `files[0]` gives
/// (`path`, `manta_path`, `name`) when that exists in `dir`, else
/// `STEM.zfs.gz` etc. beside the manifest (as the usbkey's
/// `datasets/NAME.imgmanifest` and `datasets/NAME.zfs.gz` are laid out).
fn find_file(dir: &Path, stem: &str, m: &Map<String, Value>) -> Option<PathBuf> {
    let f0 = m
        .get("files")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_object);
    if let Some(f0) = f0 {
        for k in ["path", "manta_path", "name"] {
            if let Some(name) = f0
                .get(k)
                .and_then(Value::as_str)
                .and_then(|p| Path::new(p).file_name())
            {
                let p = dir.join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    FILE_SUFFIXES
        .iter()
        .map(|s| dir.join(format!("{stem}{s}")))
        .find(|p| p.is_file())
}

/// The manifests of `dir`, origins before the images built on them.
pub fn read_dir(dir: &Path) -> Result<Vec<Seed>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| ClientError::Usage(format!("{}: {e}", dir.display())))?;
    let mut names: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "imgmanifest") && p.is_file())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(ClientError::Usage(format!(
            "{}: no *.imgmanifest files",
            dir.display()
        )));
    }
    let mut seeds = Vec::new();
    let mut seen = HashSet::new();
    for p in names {
        let bytes = std::fs::read(&p).map_err(|e| local(p.display(), e))?;
        let manifest = match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(ClientError::Usage(format!(
                    "{}: the manifest must be a JSON object",
                    p.display()
                )));
            }
            Err(e) => {
                return Err(ClientError::Usage(format!(
                    "{}: not JSON: {e}",
                    p.display()
                )));
            }
        };
        let uuid = match manifest.get("uuid").and_then(Value::as_str) {
            Some(u) if uuid::Uuid::parse_str(u).is_ok() => u.to_string(),
            _ => {
                return Err(ClientError::Usage(format!(
                    "{}: the manifest has no valid uuid",
                    p.display()
                )));
            }
        };
        if !seen.insert(uuid.clone()) {
            return Err(ClientError::Usage(format!(
                "{}: image {uuid} is in two manifests",
                p.display()
            )));
        }
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = find_file(dir, &stem, &manifest);
        seeds.push(Seed {
            manifest_path: p,
            manifest,
            uuid,
            file,
        });
    }
    Ok(origins_first(seeds))
}

/// Orders seeds so that an origin in the set comes before its children
/// (the server refuses to import an image whose origin it lacks).
fn origins_first(seeds: Vec<Seed>) -> Vec<Seed> {
    let index: HashMap<String, usize> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| (s.uuid.clone(), i))
        .collect();
    let mut order = Vec::with_capacity(seeds.len());
    let mut state = vec![0u8; seeds.len()]; // 0 new, 1 visiting, 2 placed
    fn visit(
        i: usize,
        seeds: &[Seed],
        index: &HashMap<String, usize>,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) {
        if state[i] != 0 {
            return; // placed, or a cycle (left to the server to refuse)
        }
        state[i] = 1;
        if let Some(o) = seeds[i].manifest.get("origin").and_then(Value::as_str)
            && let Some(&j) = index.get(o)
        {
            visit(j, seeds, index, state, order);
        }
        state[i] = 2;
        order.push(i);
    }
    for i in 0..seeds.len() {
        visit(i, &seeds, &index, &mut state, &mut order);
    }
    let mut slots: Vec<Option<Seed>> = seeds.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// An image that was activated once (active or disabled since).
fn activated(img: &Image) -> bool {
    matches!(img.state.as_str(), "active" | "disabled")
}

fn not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::Server { status: 404, .. })
}

/// What happened to one image of `import-dir`.
pub enum Outcome {
    Imported,
    Skipped,
    Completed,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Imported => "imported",
            Outcome::Skipped => "skipped",
            Outcome::Completed => "completed",
        }
    }
}

/// Imports one seed: AdminImportImage (unless the image exists), upload and
/// attach its file (unless it has one), activate (unless active).
/// `img`: the image as the server has it (None: it has none).
async fn seed_one(
    http: &Http,
    s: &Seed,
    img: Option<Parsed<Image>>,
    chunk: u64,
) -> Result<(Outcome, Parsed<Image>)> {
    if let Some(img) = &img
        && activated(img)
    {
        return Ok((Outcome::Skipped, img.clone()));
    }
    let fresh = img.is_none();
    let mut img = match img {
        Some(img) => img,
        None => import_manifest(http, s).await?,
    };
    if img.state == "failed" {
        return Err(failed(&img));
    }
    if img.files.is_empty() {
        let Some(file) = &s.file else {
            return Err(ClientError::Usage(format!(
                "{}: no image file found for it",
                s.manifest_path.display()
            )));
        };
        check_size(s, file)?;
        img = attach(http, s, file, chunk).await?;
    }
    if !activated(&img) {
        img = activate(http, &s.uuid).await?;
    }
    let outcome = match fresh {
        true => Outcome::Imported,
        false => Outcome::Completed,
    };
    Ok((outcome, img))
}

/// AdminImportImage of the seed's manifest: the image, without its file.
async fn import_manifest(http: &Http, s: &Seed) -> Result<Parsed<Image>> {
    let path = format!("/images/{}?action=import", s.uuid);
    let body = Value::Object(s.manifest.clone());
    let res = http
        .json("import image", || {
            http.small(Method::POST, &path, Duration::ZERO).json(&body)
        })
        .await;
    match res {
        Ok(img) => Ok(img),
        // An earlier attempt of ours got through before its answer was lost.
        Err(ClientError::Server { body, .. }) if body.code == "ImageUuidAlreadyExists" => {
            get_image(http, &s.uuid).await
        }
        Err(e) => Err(e),
    }
}

/// The seed's file has the size its manifest states (when it states one).
fn check_size(s: &Seed, file: &Path) -> Result<()> {
    let Some(size) = s
        .file0()
        .and_then(|f| f.get("size"))
        .and_then(Value::as_u64)
    else {
        return Ok(());
    };
    let have = std::fs::metadata(file)
        .map_err(|e| local(file.display(), e))?
        .len();
    if have != size {
        return Err(ClientError::Verify(format!(
            "{}: {have} bytes, the manifest says {size}",
            file.display()
        )));
    }
    Ok(())
}

/// ActivateImage.
async fn activate(http: &Http, uuid: &str) -> Result<Parsed<Image>> {
    let path = format!("/images/{uuid}?action=activate");
    let res = http
        .json("activate image", || {
            http.small(Method::POST, &path, Duration::ZERO)
                .json(&json!({}))
        })
        .await;
    match res {
        Ok(img) => Ok(img),
        // An earlier attempt of ours got through before its answer was lost.
        Err(ClientError::Server { body, .. }) if body.code == "ImageAlreadyActivated" => {
            get_image(http, uuid).await
        }
        Err(e) => Err(e),
    }
}

/// An image in state `failed`, as the refusal it is.
fn failed(img: &Image) -> ClientError {
    ClientError::Server {
        status: 422,
        body: image_failure(img),
    }
}

/// Uploads the seed's file resumably and attaches it to the image
/// (`PUT /images/{uuid}/file?upload=ID`), checked against the manifest's sha1.
async fn attach(http: &Http, s: &Seed, file: &Path, chunk: u64) -> Result<Parsed<Image>> {
    let uuid = &s.uuid;
    let up = tus::upload(http, file, None, chunk, 1).await?;
    if let Some(want) = s
        .file0()
        .and_then(|f| f.get("sha1"))
        .and_then(Value::as_str)
        && want != up.sha1
    {
        return Err(ClientError::Verify(format!(
            "{}: sha1 {} differs from the manifest's {want}",
            file.display(),
            up.sha1
        )));
    }
    // A previous run attached it already (and died before forgetting).
    if up.info.state == "registered" && up.info.image_uuid.is_some_and(|u| u.to_string() == *uuid) {
        tus::forget(&up.key);
        return get_image(http, uuid).await;
    }
    let compression = match s
        .file0()
        .and_then(|f| f.get("compression"))
        .and_then(Value::as_str)
    {
        Some(c) => c.to_string(),
        None => {
            use std::io::Read;
            let mut head = Vec::with_capacity(6);
            std::fs::File::open(file)
                .and_then(|f| f.take(6).read_to_end(&mut head))
                .map_err(|e| local(file.display(), e))?;
            guess_compression(&head).to_string()
        }
    };
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("upload", &up.id)
        .append_pair("compression", &compression)
        .append_pair("sha1", &up.sha1);
    let path = format!("/images/{uuid}/file?{}", q.finish());
    let res = http
        .json("attach file", || {
            http.small(Method::PUT, &path, ATTACH_WAIT)
        })
        .await;
    let img = match res {
        Ok(img) => img,
        // An earlier attempt of ours got through before its answer was lost.
        Err(ClientError::Server { body, .. })
            if body.code == "FileInUse" || body.code == "ImageFilesImmutable" =>
        {
            get_image(http, uuid).await?
        }
        Err(e) => return Err(e),
    };
    tus::forget(&up.key);
    if img.state == "failed" {
        return Err(failed(&img));
    }
    Ok(img)
}

/// A seed after [`check_all`].
enum Checked {
    /// The server would refuse its manifest.
    Invalid(ClientError),
    /// To import, or completed from the server's image (Some).
    Valid(Option<Box<Parsed<Image>>>),
}

/// Every manifest of the directory checked by the server as
/// AdminImportImage would check it, before any file is sent. An image the
/// server has already is not checked again (it was imported from this
/// manifest). An image whose origin is refused only for being absent,
/// while the directory holds that origin and it is valid, is valid (the
/// origin is imported first). A failure that is no refusal of the
/// manifest (the server unreachable, a bad token) ends the verb.
async fn check_all(http: &Http, seeds: &[Seed]) -> Result<Vec<Checked>> {
    let mut out: Vec<Checked> = Vec::with_capacity(seeds.len());
    for s in seeds {
        match get_image(http, &s.uuid).await {
            Ok(img) => {
                out.push(Checked::Valid(Some(Box::new(img))));
                continue;
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        let body = Value::Object(s.manifest.clone());
        let check = match super::images::validate(http, &body, true).await {
            Ok(()) => Checked::Valid(None),
            Err(e) if e.server().is_some_and(|(st, _)| st == 422) => {
                let origin = s.manifest.get("origin").and_then(Value::as_str);
                // Origins come first: an origin of the directory is checked.
                let origin_here = origin.and_then(|o| {
                    seeds
                        .iter()
                        .zip(&out)
                        .find(|(o2, _)| o2.uuid == o)
                        .map(|(_, c)| matches!(c, Checked::Valid(_)))
                });
                let absent = e
                    .server()
                    .is_some_and(|(_, b)| b.code == "OriginDoesNotExist");
                match (absent, origin_here) {
                    (true, Some(true)) => Checked::Valid(None),
                    (true, Some(false)) => Checked::Invalid(super::http::refused(
                        422,
                        "OriginDoesNotExist",
                        format!(
                            "its origin {} is in the directory but its manifest is invalid",
                            origin.unwrap_or_default()
                        ),
                    )),
                    _ => Checked::Invalid(e),
                }
            }
            Err(e) => return Err(e),
        };
        out.push(check);
    }
    Ok(out)
}

/// `imgapi import-dir DIR`: checks every manifest, imports the valid ones,
/// prints the summary; an invalid or failed image makes the verb fail
/// (after the others were tried).
pub async fn import_dir(http: &Http, dir: &Path, chunk: u64) -> Result<()> {
    let seeds = read_dir(dir)?;
    let checked = check_all(http, &seeds).await?;
    let mut rows = Vec::new();
    let mut shown = String::new();
    let mut first_err: Option<ClientError> = None;
    let mut not_imported = 0;
    for (s, check) in seeds.iter().zip(checked) {
        let (res, why_not) = match check {
            Checked::Invalid(e) => (Err(e), "invalid"),
            Checked::Valid(img) => (seed_one(http, s, img.map(|b| *b), chunk).await, "failed"),
        };
        let (result, error) = match res {
            Ok((o, _)) => (o.as_str(), None),
            Err(e) => {
                let msg = e.to_string();
                shown += &e.text(&format!("imgapi: {} {}: ", s.uuid, s.field("name")));
                not_imported += 1;
                if first_err.is_none() {
                    first_err = Some(e);
                }
                (why_not, Some(msg))
            }
        };
        rows.push(json!({
            "uuid": s.uuid, "name": s.field("name"), "version": s.field("version"),
            "manifest": s.manifest_path.display().to_string(),
            "file": s.file.as_ref().map(|f| f.display().to_string()),
            "result": result, "error": error,
        }));
    }
    // Every image was tried; the first failure gives the exit code.
    let Some(first) = first_err else {
        if http.conn.json {
            output::json(&Value::Array(rows));
        } else {
            print!("{}", import_table(&rows));
        }
        return Ok(());
    };
    if http.conn.json {
        output::json(&Value::Array(rows));
        return Err(first);
    }
    print!("{}", import_table(&rows));
    eprint!("{shown}");
    Err(ClientError::Several {
        first: Box::new(first),
        summary: format!(
            "{not_imported} of {} images not imported (above): correct what is named and run \
             the same command again (the imported ones are skipped)",
            rows.len()
        ),
    })
}

/// import-dir's summary table.
fn import_table(rows: &[Value]) -> String {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            ["uuid", "name", "version", "result"]
                .iter()
                .map(|k| r[*k].as_str().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    output::table(&["UUID", "NAME", "VERSION", "RESULT"], &table)
}

/// Polling interval of an import job.
const POLL: Duration = Duration::from_millis(250);

/// The origin chain of `uuid` at the source, root first (without `uuid`).
async fn source_origins(source: &str, uuid: &str) -> Result<Vec<String>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let mut chain = Vec::new();
    let mut cur = uuid.to_string();
    for _ in 0..64 {
        let u = format!("{}/images/{cur}", source.trim_end_matches('/'));
        let r = client
            .get(&u)
            .send()
            .await
            .map_err(|e| ClientError::Transport(format!("{u}: {}", super::http::chain(&e))))?;
        if !r.status().is_success() {
            let st = r.status().as_u16();
            let body = super::http::error_body(r).await;
            return Err(ClientError::Server { status: st, body });
        }
        let img: Image = r
            .json()
            .await
            .map_err(|e| ClientError::Transport(format!("{u}: {e}")))?;
        match img.origin.map(|o| o.to_string()) {
            Some(o) if !chain.contains(&o) && o != uuid => {
                cur = o.clone();
                chain.push(o);
            }
            _ => break,
        }
    }
    chain.reverse();
    Ok(chain)
}

/// Starts one AdminImportRemoteImage job and follows it to its end.
async fn import_one(
    http: &Http,
    uuid: &str,
    source: &str,
    skip_owner: bool,
) -> Result<Parsed<Job>> {
    let started = start_import(http, uuid, source, skip_owner).await?;
    let job = follow_job(http, uuid, &started).await?;
    if job.execution == "succeeded" {
        return Ok(job);
    }
    Err(ClientError::Server {
        status: 422,
        body: job_failure(&job),
    })
}

/// `POST /images/{uuid}?action=import-remote`: the job it started. The
/// source's own refusal (503 RemoteSourceError, e.g. the image is not
/// there) is tried again only twice, then reported as a refusal.
async fn start_import(
    http: &Http,
    uuid: &str,
    source: &str,
    skip_owner: bool,
) -> Result<ImportStarted> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("action", "import-remote")
        .append_pair("source", source);
    if skip_owner {
        q.append_pair("skip_owner_check", "true");
    }
    let path = format!("/images/{uuid}?{}", q.finish());
    let remote_errors = std::cell::Cell::new(0u32);
    http.retrying("import-remote", || async {
        let r = match http.small(Method::POST, &path, Duration::ZERO).send().await {
            Err(e) => {
                return Ok(Attempt::Retry {
                    why: super::http::why(&e),
                    after: None,
                });
            }
            Ok(r) => r,
        };
        if r.status().is_success() {
            return match r.bytes().await {
                Err(e) => Ok(Attempt::Retry {
                    why: super::http::chain(&e),
                    after: None,
                }),
                Ok(b) => serde_json::from_slice(&b).map(Attempt::Done).map_err(|e| {
                    ClientError::Transport(format!(
                        "import-remote: the answer is not a started job ({e}): {}",
                        String::from_utf8_lossy(&b)
                    ))
                }),
            };
        }
        let status = r.status().as_u16();
        let body = super::http::error_body(r).await;
        if body.code == "RemoteSourceError" {
            remote_errors.set(remote_errors.get() + 1);
            if remote_errors.get() > 2 {
                return Err(ClientError::Server { status, body });
            }
        }
        if matches!(status, 500 | 502 | 503 | 504) {
            return Ok(Attempt::Retry {
                why: format!("{status} {}: {}", body.code, body.message),
                after: None,
            });
        }
        Err(ClientError::Server { status, body })
    })
    .await
}

/// Polls the job (`GET /jobs/{uuid}`) until it ends, with a progress bar
/// of its bytes.
async fn follow_job(http: &Http, uuid: &str, started: &ImportStarted) -> Result<Parsed<Job>> {
    let pb = output::bar(0, http.conn.json, &format!("import {uuid}"));
    let jpath = format!("/jobs/{}", started.job_uuid);
    let job = loop {
        let job: Parsed<Job> = http
            .json("import job", || {
                http.small(Method::GET, &jpath, Duration::ZERO)
            })
            .await?;
        if let Some(t) = job.bytes_total
            && t > 0
        {
            pb.set_length(t);
        }
        pb.set_position(job.bytes_received);
        match job.execution.as_str() {
            "succeeded" | "failed" | "canceled" => break job,
            _ => tokio::time::sleep(POLL).await,
        }
    };
    pb.finish_and_clear();
    Ok(job)
}

/// Why a job that did not succeed failed: its last step's error.
fn job_failure(job: &Job) -> ErrorBody {
    let last = job.chain_results.iter().rev().find_map(|r| match &r.error {
        JobChainError::Failed { code, message, .. } => Some((code.clone(), message.clone())),
        JobChainError::None(_) => None,
    });
    let (code, message) = last.unwrap_or_else(|| {
        (
            "ImportFailed".to_string(),
            format!("import job {} {}", job.uuid, job.execution),
        )
    });
    ErrorBody {
        code,
        message,
        errors: None,
    }
}

/// What `imgapi import-remote` did: the image as imported, and its job(s)
/// (origins first).
pub struct ImportedRemote {
    pub image: Parsed<Image>,
    pub jobs: Vec<Parsed<Job>>,
}

impl ImportedRemote {
    /// `--json`: as the server sent them.
    pub fn to_json(&self) -> Value {
        json!({"image": self.image.raw, "jobs": self.jobs})
    }

    /// For people: the image's main fields and its file.
    pub fn summary(&self) -> Value {
        let img = &self.image.typed;
        let file = img.files.first();
        json!({
            "uuid": img.uuid, "name": img.name, "version": img.version, "state": img.state,
            "sha1": file.map(|f| &f.sha1), "size": file.map(|f| f.size),
        })
    }
}

/// `imgapi import-remote UUID --source URL`: the image as imported, and its
/// job(s).
pub async fn import_remote(
    http: &Http,
    uuid: &str,
    source: &str,
    all_origins: bool,
    skip_owner: bool,
) -> Result<ImportedRemote> {
    let mut jobs = Vec::new();
    if all_origins {
        for o in source_origins(source, uuid).await? {
            match get_image(http, &o).await {
                Ok(img) if img.state == "active" => continue,
                Ok(_) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
            jobs.push(import_one(http, &o, source, skip_owner).await?);
        }
    }
    jobs.push(import_one(http, uuid, source, skip_owner).await?);
    let image = get_image(http, uuid).await?;
    Ok(ImportedRemote { image, jobs })
}
