//! The image verbs: publish (upload, register, wait for `active`), list,
//! get, update, activate, disable, enable, delete, ACL changes; and the
//! upload-session verbs (list, abort).

use std::path::Path;
use std::time::{Duration, Instant};

use imgapi_protocol::tus as protocol;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::config::state_dir;
use super::error::{ClientError, Result, local};
use super::http::Http;
use super::output;
use super::state::StateStore;
use super::tus;
use super::types::{AccountUsage, Image, Parsed, UploadInfo, Usage, image_failure};

/// Longest `?wait=` asked of the server per request; longer waits poll.
const SERVER_WAIT: u64 = 30;

/// The compression named by a file's first bytes.
pub fn guess_compression(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        "xz"
    } else {
        "none"
    }
}

fn read_head(p: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(|e| local(p.display(), e))?;
    let mut buf = vec![0u8; 6];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(local(p.display(), e)),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

fn read_manifest(p: &Path) -> Result<Map<String, Value>> {
    let s = std::fs::read(p).map_err(|e| ClientError::Usage(format!("{}: {e}", p.display())))?;
    match serde_json::from_slice(&s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ClientError::Usage(format!(
            "{}: the manifest must be a JSON object",
            p.display()
        ))),
        Err(e) => Err(ClientError::Usage(format!(
            "{}: not JSON: {e}",
            p.display()
        ))),
    }
}

/// The registration body: the manifest with `files[0]` pointing at the
/// upload and stating its digests (and the guessed compression if absent).
/// Without an upload, the body that asks the server to validate the
/// registration before the file is sent.
pub fn registration(
    mut manifest: Map<String, Value>,
    up: Option<&tus::Uploaded>,
    head: &[u8],
) -> Result<Value> {
    let mut file = match manifest.remove("files") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(Value::Array(mut a)) if a.len() == 1 => match a.remove(0) {
            Value::Object(o) => o,
            _ => {
                return Err(ClientError::Usage(
                    "the manifest's files[0] must be an object".into(),
                ));
            }
        },
        Some(_) => {
            return Err(ClientError::Usage(
                "the manifest's files must be a list of one file".into(),
            ));
        }
    };
    for k in ["upload", "path", "manta_path", "stor"] {
        file.remove(k);
    }
    if let Some(up) = up {
        file.insert("upload".into(), json!(up.id));
        file.insert("content_md5".into(), json!(up.content_md5));
    }
    if !file.get("compression").is_some_and(Value::is_string) {
        file.insert("compression".into(), json!(guess_compression(head)));
    }
    manifest.insert("files".into(), json!([file]));
    Ok(Value::Object(manifest))
}

/// `POST /images?action=validate` (with `import`: as AdminImportImage
/// would check it): the server's refusal of `body`, made before any file
/// is sent. A server without that action (it names `action` as invalid)
/// is not asked.
pub async fn validate(http: &Http, body: &Value, import: bool) -> Result<()> {
    let path = match import {
        true => "/images?action=validate&import=true",
        false => "/images?action=validate",
    };
    let res = http
        .json::<serde::de::IgnoredAny>("validate manifest", || {
            http.small(Method::POST, path, Duration::ZERO).json(body)
        })
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(ClientError::Server { body, .. })
            if body.code == "InvalidParameter"
                && body.errors.iter().flatten().any(|e| e.field == "action") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Polls the image until it leaves `creating` or `deadline` passes.
async fn wait_state(
    http: &Http,
    mut img: Parsed<Image>,
    deadline: Instant,
) -> Result<Parsed<Image>> {
    let mut delay = Duration::from_millis(200);
    while img.state == "creating" {
        if Instant::now() >= deadline {
            return Err(ClientError::Transport(format!(
                "image {uuid} is still being verified (state creating); \
                 check it later with `imgapi images get {uuid}`",
                uuid = img.uuid
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
        img = get_image(http, &img.uuid.to_string()).await?;
    }
    Ok(img)
}

/// GetImage.
pub async fn get_image(http: &Http, uuid: &str) -> Result<Parsed<Image>> {
    get_image_with(http, uuid, false).await
}

/// GetImage, with admin fields (files' store, downloads) if `admin`.
pub async fn get_image_with(http: &Http, uuid: &str, admin: bool) -> Result<Parsed<Image>> {
    let p = if admin {
        format!("/images/{uuid}?inclAdminFields=true")
    } else {
        format!("/images/{uuid}")
    };
    http.json("get image", || http.small(Method::GET, &p, Duration::ZERO))
        .await
}

/// What `imgapi publish` made: the image, and the upload its file came in.
pub struct Published {
    pub image: Parsed<Image>,
    pub upload: tus::Uploaded,
}

impl Published {
    /// `--json`: the image as the server sent it, and the upload.
    pub fn to_json(&self) -> Value {
        json!({"image": self.image.raw, "upload": self.upload.to_json()})
    }

    /// For people: the image's main fields, its file, and where the upload
    /// resumed (when it did).
    pub fn summary(&self) -> Value {
        let img = &self.image.typed;
        let file = img.files.first();
        let mut o = json!({
            "uuid": img.uuid, "name": img.name, "version": img.version, "os": img.os,
            "type": img.type_, "state": img.state, "owner": img.owner, "public": img.public,
            "sha1": file.map(|f| &f.sha1), "size": file.map(|f| f.size),
        });
        if self.upload.resumed_from > 0 {
            o["resumed_from"] = json!(self.upload.resumed_from);
        }
        o
    }
}

/// `imgapi publish`.
pub async fn publish(
    http: &Http,
    manifest: &Path,
    file: &Path,
    wait: u64,
    chunk: u64,
    parallel: Option<usize>,
) -> Result<Published> {
    let m = read_manifest(manifest)?;
    let head = read_head(file)?;
    // A manifest the server would refuse is refused before the first byte.
    let check = registration(m.clone(), None, &head)?;
    if let Err(e) = validate(http, &check, false).await {
        let e = super::hints::explain_conn(e, &http.conn);
        return Err(match e.server() {
            Some((422, _)) => e.hint(format!(
                "nothing was uploaded: correct {} and run the same command again",
                manifest.display()
            )),
            _ => e,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    let parallel = match parallel {
        Some(n) => n,
        None => std::fs::metadata(file)
            .map(|m| super::parallel::default_parallel(m.len()))
            .unwrap_or(1),
    };
    let up = tus::upload(http, file, None, chunk, parallel).await?;
    let done = |image: Parsed<Image>, upload: tus::Uploaded| -> Result<Published> {
        tus::forget(&upload.key);
        if image.state == "failed" {
            let body = image_failure(&image);
            return Err(ClientError::Server { status: 422, body });
        }
        Ok(Published { image, upload })
    };
    // A previous run registered it already (and died before forgetting).
    if up.info.state == "registered"
        && let Some(u) = up.info.image_uuid
    {
        let img = get_image(http, &u.to_string()).await?;
        return done(wait_state(http, img, deadline).await?, up);
    }
    let body = registration(m, Some(&up), &head)?;
    let img = match register(http, &body, &up, wait.min(SERVER_WAIT)).await {
        Err(e @ ClientError::Server { status: 422, .. }) => {
            return Err(e.hint(format!(
                "the upload is kept: correct {} and run the same command again (the file is \
                 not sent again)",
                manifest.display()
            )));
        }
        res => res?,
    };
    done(wait_state(http, img, deadline).await?, up)
}

/// `POST /images?wait=W` of the registration `body` of upload `up`: the
/// image (created, or being verified).
async fn register(
    http: &Http,
    body: &Value,
    up: &tus::Uploaded,
    wait: u64,
) -> Result<Parsed<Image>> {
    let path = format!("/images?wait={wait}");
    let res = http
        .json("register image", || {
            http.small(Method::POST, &path, Duration::from_secs(wait))
                .json(body)
        })
        .await;
    match res {
        // An earlier attempt of ours got through before its answer was lost.
        Err(ClientError::Server { body, .. }) if body.code == "FileInUse" => {
            let info: UploadInfo = http
                .json("upload info", || {
                    http.small(
                        Method::GET,
                        &format!("/uploads/{}/info", up.id),
                        Duration::ZERO,
                    )
                })
                .await?;
            match info.image_uuid {
                Some(u) => get_image(http, &u.to_string()).await,
                None => Err(ClientError::Server { status: 409, body }),
            }
        }
        res => res,
    }
}

/// ListImages filters.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ListFilters {
    /// Images owned by this account uuid.
    #[arg(long)]
    pub owner: Option<String>,
    /// Name (`~sub` for a substring).
    #[arg(long)]
    pub name: Option<String>,
    /// Version (`~sub` for a substring).
    #[arg(long)]
    pub version: Option<String>,
    /// Type, e.g. zone-dataset, zvol (`!type` to exclude).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// OS, e.g. smartos, linux.
    #[arg(long)]
    pub os: Option<String>,
    /// Public (true) or private (false) images only.
    #[arg(long)]
    pub public: Option<bool>,
    /// State: active (default), unactivated, disabled, creating, failed, all.
    #[arg(long)]
    pub state: Option<String>,
    /// Tag filter KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Billing tag (repeatable).
    #[arg(long = "billing-tag")]
    pub billing_tags: Vec<String>,
    /// Channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// At most this many images (server maximum 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this image uuid (paging).
    #[arg(long)]
    pub marker: Option<String>,
    /// Sort, e.g. published_at.desc.
    #[arg(long)]
    pub sort: Option<String>,
    /// Images never downloaded, or last downloaded before this date.
    #[arg(long, value_name = "DATE")]
    pub last_downloaded_before: Option<String>,
    /// Images last downloaded at or after this date.
    #[arg(long, value_name = "DATE")]
    pub last_downloaded_since: Option<String>,
    /// With admin fields (files' store, downloads, last download).
    #[arg(long)]
    pub admin_fields: bool,
}

impl ListFilters {
    pub fn query(&self) -> Result<String> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let pairs = [
            ("owner", self.owner.clone()),
            ("name", self.name.clone()),
            ("version", self.version.clone()),
            ("type", self.kind.clone()),
            ("os", self.os.clone()),
            ("public", self.public.map(|b| b.to_string())),
            ("state", self.state.clone()),
            ("channel", self.channel.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
            ("marker", self.marker.clone()),
            ("sort", self.sort.clone()),
            (
                "last_downloaded_before",
                self.last_downloaded_before.clone(),
            ),
            ("last_downloaded_since", self.last_downloaded_since.clone()),
            (
                "inclAdminFields",
                self.admin_fields.then(|| "true".to_string()),
            ),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        for t in &self.tags {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| ClientError::Usage(format!("--tag \"{t}\": expected KEY=VALUE")))?;
            q.append_pair(&format!("tag.{k}"), v);
        }
        for b in &self.billing_tags {
            q.append_pair("billing_tag", b);
        }
        Ok(q.finish())
    }
}

pub async fn list(http: &Http, f: &ListFilters) -> Result<()> {
    let q = f.query()?;
    let path = if q.is_empty() {
        "/images".to_string()
    } else {
        format!("/images?{q}")
    };
    let images: Parsed<Vec<Image>> = http
        .json("list images", || {
            http.small(Method::GET, &path, Duration::ZERO)
        })
        .await?;
    if http.conn.json {
        output::json(&images.raw);
    } else {
        print!("{}", output::images_table(&images));
    }
    Ok(())
}

/// `KEY=VALUE` pairs (VALUE as JSON when it parses, else a string) merged
/// over a JSON object file.
pub fn update_body(pairs: &[String], file: Option<&Path>) -> Result<Value> {
    let mut m = match file {
        Some(p) => read_manifest(p)?,
        None => Map::new(),
    };
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| ClientError::Usage(format!("\"{p}\": expected KEY=VALUE")))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
        m.insert(k.to_string(), v);
    }
    if m.is_empty() {
        return Err(ClientError::Usage(
            "nothing to update: give KEY=VALUE pairs or --file".into(),
        ));
    }
    Ok(Value::Object(m))
}

/// `POST /images/{uuid}?action=...` (update, activate, enable, disable).
pub async fn action(http: &Http, uuid: &str, action: &str, body: Value) -> Result<Parsed<Image>> {
    let p = format!("/images/{uuid}?action={action}");
    http.json(action, || {
        http.small(Method::POST, &p, Duration::ZERO).json(&body)
    })
    .await
}

/// `POST /images/{uuid}/acl?action=add|remove`: the image with its new ACL.
pub async fn acl(
    http: &Http,
    uuid: &str,
    action: &str,
    accounts: &[String],
) -> Result<Parsed<Image>> {
    let p = format!("/images/{uuid}/acl?action={action}");
    http.json("acl", || {
        http.small(Method::POST, &p, Duration::ZERO).json(&accounts)
    })
    .await
}

/// `POST /images/{uuid}/clone` (CloneImage; `?account=` from the
/// connection's account).
pub async fn clone(http: &Http, uuid: &str) -> Result<Parsed<Image>> {
    let p = format!("/images/{uuid}/clone");
    http.json("clone", || http.small(Method::POST, &p, Duration::ZERO))
        .await
}

pub async fn delete(http: &Http, uuid: &str) -> Result<()> {
    let p = format!("/images/{uuid}");
    http.send("delete image", || {
        http.small(Method::DELETE, &p, Duration::ZERO)
    })
    .await?;
    Ok(())
}

/// `imgapi uploads list`: the caller's sessions on the server, and which
/// of them this machine can resume.
pub async fn uploads_list(http: &Http) -> Result<()> {
    let ups: Vec<Parsed<UploadInfo>> = http
        .json("list uploads", || {
            http.small(Method::GET, "/uploads", Duration::ZERO)
        })
        .await?;
    let local_entries = StateStore::open(state_dir()?)
        .map(|s| s.list())
        .unwrap_or_default();
    let rows: Vec<(Parsed<UploadInfo>, Option<&Path>)> = ups
        .into_iter()
        .map(|u| {
            let here = local_entries
                .iter()
                .find(|(_, e)| e.url == http.conn.url && u.id.to_string() == e.upload_id)
                .map(|(_, e)| e.file.path.as_path());
            (u, here)
        })
        .collect();
    if http.conn.json {
        let with_local = rows.iter().map(|(u, here)| {
            let mut v = u.raw.clone();
            if let Some(p) = here {
                v["local_file"] = json!(p);
            }
            v
        });
        output::json(&Value::Array(with_local.collect()));
    } else {
        print!("{}", output::uploads_table(&rows));
    }
    Ok(())
}

/// `imgapi uploads abort ID`: ends the session on the server and forgets it
/// locally.
pub async fn uploads_abort(http: &Http, id: &str) -> Result<()> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ClientError::Usage(format!("\"{id}\" is not an upload id")));
    }
    let p = format!("/uploads/{id}");
    let res = http
        .send("abort upload", || {
            http.small(Method::DELETE, &p, Duration::ZERO)
                .header(protocol::RESUMABLE, protocol::VERSION)
        })
        .await;
    if let Ok(s) = StateStore::open(state_dir()?) {
        s.remove_upload(&http.conn.url, id);
    }
    res?;
    if http.conn.json {
        output::json(&json!({"id": id, "aborted": true}));
    } else {
        println!("aborted upload {id}");
    }
    Ok(())
}

/// Refuses a uuid argument that is not one (before any request).
pub fn check_uuid(what: &str, s: &str) -> Result<()> {
    if uuid::Uuid::parse_str(s).is_err() {
        return Err(ClientError::Usage(format!("{what} \"{s}\" is not a uuid")));
    }
    Ok(())
}

/// `imgapi usage`: the usage of `--account` (a uuid, acting for it as
/// every verb does, or a login, looked up by the server), or every
/// account's (operators).
pub async fn usage(http: &Http, limit: Option<u32>) -> Result<()> {
    let of = http.conn.account.clone();
    let mut via = http.clone();
    let path = match (&of, limit) {
        (Some(who), _) => {
            if uuid::Uuid::parse_str(who).is_err() {
                // A login is not an `?account=`: the server names it in the path.
                via.conn.account = None;
            }
            format!(
                "/usage/{}",
                form_urlencoded::byte_serialize(who.as_bytes()).collect::<String>()
            )
        }
        (None, Some(n)) => format!("/usage?limit={n}"),
        (None, None) => "/usage".to_string(),
    };
    let get = || via.small(Method::GET, &path, Duration::ZERO);
    if of.is_some() {
        let usage: Parsed<Usage> = via.json("usage", get).await?;
        match http.conn.json {
            true => output::json(&usage.raw),
            false => print!("{}", output::usage_fields(&usage)),
        }
    } else {
        let all: Parsed<Vec<AccountUsage>> = via.json("usage", get).await?;
        match http.conn.json {
            true => output::json(&all.raw),
            false => print!("{}", output::usage_table(&all)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_from_magic_bytes() {
        assert_eq!(guess_compression(&[0x1f, 0x8b, 8, 0]), "gzip");
        assert_eq!(guess_compression(b"BZh91AY"), "bzip2");
        assert_eq!(guess_compression(&[0xfd, b'7', b'z', b'X', b'Z', 0]), "xz");
        assert_eq!(guess_compression(b"\0\0\0"), "none");
        assert_eq!(guess_compression(b""), "none");
    }

    #[test]
    fn tag_filters_become_tag_dot_keys() {
        let f = ListFilters {
            tags: vec!["role=db".into()],
            state: Some("all".into()),
            ..Default::default()
        };
        assert_eq!(f.query().unwrap(), "state=all&tag.role=db");
        let bad = ListFilters {
            tags: vec!["x".into()],
            ..Default::default()
        };
        assert!(matches!(bad.query(), Err(ClientError::Usage(_))));
    }
}
