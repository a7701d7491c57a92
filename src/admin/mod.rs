//! The admin verbs that work on stored data: `check-files` (verify every
//! image file and icon against its manifest) and `gc` (remove expired
//! uploads, expired placeholders, objects in the image areas that no image
//! references, and upload data that no upload accounts for). Both print one line per problem or action and a
//! summary line; neither touches an image whose registration is in progress.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::db::registrations as jobs;
use crate::digest::StreamHasher;
use crate::error::{Error, Result};
use crate::manifest::Image;
use crate::store::{ObjectMeta, Store, StoreName, image_dir_key, image_file_key, image_icon_key};

/// What the admin verbs work on: the database, and the image and upload
/// services (with their stores and clock).
pub struct Services<'a> {
    pub db: &'a crate::db::Db,
    pub images: &'a crate::images::Images,
    pub uploads: &'a crate::uploads::Uploads,
}

/// The stors whose image areas `gc` sweeps.
const STORS: &[StoreName] = &[StoreName::Local, StoreName::Manta];

/// The stores and prefixes where unfinished uploads keep their bytes.
const UPLOAD_AREAS: &[(StoreName, &str)] = &[
    (StoreName::Assets, "imgapi-uploads/"),
    (StoreName::Assets, crate::uploads::ASSETS_UPLOAD_AREA),
    (StoreName::Manta, "imgapi/uploads/"),
    (StoreName::Staging, "imgapi/uploads/"),
];

/// Objects this recently modified may still be being written (or recorded
/// in the database) by a running server: `gc` leaves them alone unless no
/// image could own them.
pub const GRACE: Duration = Duration::from_secs(3600);

/// Files verified at once by `check-files` (each read streams its object).
const CHECK_CONCURRENCY: usize = 4;

/// What `check-files` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckSummary {
    /// Files and icons checked.
    pub checked: usize,
    /// Problems reported (one line each).
    pub problems: usize,
    /// Images left out because a registration is in progress.
    pub skipped_images: usize,
}

/// What `gc` deleted (or, in a dry run, would delete).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcSummary {
    pub uploads: usize,
    pub placeholders: usize,
    pub objects: usize,
    /// Bytes of the orphaned objects.
    pub object_bytes: u64,
    /// Deletions that failed (with `--yes`).
    pub errors: usize,
}

/// One stored object an image's manifest describes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    uuid: Uuid,
    /// `file` or `icon`.
    what: &'static str,
    stor: StoreName,
    key: String,
    size: u64,
    sha1: String,
    content_md5: String,
}

fn targets_of(img: &Image) -> Vec<Target> {
    let mut out: Vec<Target> = img
        .files
        .iter()
        .map(|f| Target {
            uuid: img.uuid,
            what: "file",
            stor: f.stor,
            key: image_file_key(f.stor, &img.uuid),
            size: f.size,
            sha1: f.sha1.clone(),
            content_md5: f.content_md5.clone(),
        })
        .collect();
    if let Some(i) = &img.icon {
        out.push(Target {
            uuid: img.uuid,
            what: "icon",
            stor: i.stor,
            key: image_icon_key(i.stor, &img.uuid),
            size: i.size,
            sha1: i.sha1.clone(),
            content_md5: i.content_md5.clone(),
        });
    }
    out
}

/// An error with its cause, on one line.
fn describe(e: impl Into<Error>) -> String {
    let e = e.into();
    match std::error::Error::source(&e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}

/// Images whose registrar job has not finished (their objects are in flux).
async fn busy_images(state: &Services<'_>) -> Result<HashSet<Uuid>> {
    let pending = state.db.read(|c| c.job_pending()).await?;
    Ok(pending.into_iter().map(|job| job.image_uuid).collect())
}

/// `imgapi check-files`: verify that every image file and icon exists and
/// has the size, sha1 and md5 of its manifest (`quick`: the size only).
/// Prints one line per problem, then a summary.
pub async fn check_files<W: Write>(
    state: &Services<'_>,
    quick: bool,
    out: &mut W,
) -> Result<CheckSummary> {
    let images = state.db.read(|c| c.image_all()).await?;
    let busy = busy_images(state).await?;
    let mut sum = CheckSummary::default();
    let mut targets = Vec::new();
    for img in &images {
        if busy.contains(&img.uuid) {
            sum.skipped_images += 1;
            continue;
        }
        targets.extend(targets_of(img));
    }
    let stores = &state.images.stores;
    let mut results = futures_util::stream::iter(targets)
        .map(|t| async move {
            let problem = check_one(Ok(stores.get(t.stor)), &t, quick).await;
            (t, problem)
        })
        .buffered(if quick { 16 } else { CHECK_CONCURRENCY });
    while let Some((t, problem)) = results.next().await {
        sum.checked += 1;
        let Some(problem) = problem else { continue };
        // A running server may have replaced the file meanwhile: report
        // only what still contradicts the current manifest.
        let uuid = t.uuid;
        let now = state.db.read(move |c| c.image_get(uuid)).await?;
        let still = now.is_some_and(|img| targets_of(&img).contains(&t))
            && !busy_images(state).await?.contains(&uuid);
        if !still {
            continue;
        }
        sum.problems += 1;
        writeln!(
            out,
            "{} {} ({} {}): {problem}",
            t.uuid, t.what, t.stor, t.key
        )?;
    }
    let mut line = format!(
        "check-files: {} objects checked ({}), {} problem{}",
        sum.checked,
        if quick {
            "size only"
        } else {
            "size, sha1 and md5"
        },
        sum.problems,
        if sum.problems == 1 { "" } else { "s" }
    );
    if sum.skipped_images > 0 {
        line += &format!(
            ", {} image(s) skipped (registration in progress)",
            sum.skipped_images
        );
    }
    writeln!(out, "{line}")?;
    Ok(sum)
}

/// Check one object; the problem, if any.
async fn check_one(store: Result<&Store>, t: &Target, quick: bool) -> Option<String> {
    let store = match store {
        Ok(s) => s,
        Err(e) => return Some(describe(e)),
    };
    let meta = match store.head(&t.key).await {
        Ok(Some(m)) => m,
        Ok(None) => return Some("missing".into()),
        Err(e) => return Some(format!("cannot stat: {}", describe(e))),
    };
    if quick {
        return (meta.size != t.size)
            .then(|| format!("size is {}, the manifest says {}", meta.size, t.size));
    }
    let digests = async {
        let mut body = store.get(&t.key, None).await?;
        let mut h = StreamHasher::new()?;
        while let Some(chunk) = body.next().await {
            h.update(&chunk?).await?;
        }
        Ok::<_, Error>(h.finish().await?)
    }
    .await;
    let d = match digests {
        Ok(d) => d,
        Err(e) => return Some(format!("unreadable: {}", describe(e))),
    };
    let mut bad = Vec::new();
    if d.size != t.size {
        bad.push(format!("size is {}, the manifest says {}", d.size, t.size));
    }
    if !d.sha1_hex().eq_ignore_ascii_case(&t.sha1) {
        bad.push(format!(
            "sha1 is {}, the manifest says {}",
            d.sha1_hex(),
            t.sha1
        ));
    }
    if d.md5_base64() != t.content_md5 {
        bad.push(format!(
            "md5 is {}, the manifest says {}",
            d.md5_base64(),
            t.content_md5
        ));
    }
    (!bad.is_empty()).then(|| bad.join("; "))
}

/// The key prefix of a stor's image area (`images/`, `imgapi/images/`).
pub fn image_area(stor: impl AsRef<str>) -> String {
    // image_dir_key is "<area>/<uuid[0:3]>/<uuid>": drop the last two segments.
    let dir = image_dir_key(stor, &Uuid::nil());
    let area = dir.rsplitn(3, '/').nth(2).unwrap_or("");
    format!("{area}/")
}

/// The image uuid and object name of a key in an image area, if it has the
/// layout the server writes (`<uuid[0:3]>/<uuid>/<name>`).
fn parse_area_key<'a>(area: &str, key: &'a str) -> Option<(Uuid, &'a str)> {
    let rest = key.strip_prefix(area)?;
    let mut segs = rest.split('/');
    let (p3, u, name) = (segs.next()?, segs.next()?, segs.next()?);
    if segs.next().is_some() || name.is_empty() {
        return None;
    }
    let uuid = Uuid::parse_str(u).ok()?;
    (uuid.to_string() == u && u.get(..3) == Some(p3)).then_some((uuid, name))
}

/// A temporary file of an atomic write (`.file0.tmp.<id>`).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp.")
}

fn age(meta: &ObjectMeta, now_ns: u128) -> Duration {
    let ns = now_ns.saturating_sub(meta.mtime_ns);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Is `now` (from a HEAD) the object that was listed as `then`? By size,
/// and by ETag where both have one, else by mtime: exactly for files, to
/// the second for S3 (whose HEAD has whole seconds, and some servers list
/// no ETags).
fn unchanged(then: &ObjectMeta, now: &ObjectMeta) -> bool {
    let same = match (&then.etag, &now.etag) {
        (Some(a), Some(b)) => a.trim_matches('"') == b.trim_matches('"'),
        (None, None) => then.mtime_ns == now.mtime_ns,
        _ => then.mtime_ns / 1_000_000_000 == now.mtime_ns / 1_000_000_000,
    };
    same && then.size == now.size
}

/// An object `gc` removes, and why.
#[derive(Debug, Clone)]
struct Orphan {
    stor: StoreName,
    key: String,
    meta: ObjectMeta,
    why: String,
}

/// Why an object in an image area is garbage, or None to keep it.
/// `images` maps the uuids of the images that stay to their state;
/// `referenced` holds the (stor, key) of every file and icon images name;
/// `busy` the images whose registration is in progress.
fn classify(
    stor: StoreName,
    key: &str,
    meta: &ObjectMeta,
    now_ns: u128,
    images: &HashMap<Uuid, &'static str>,
    referenced: &HashSet<(StoreName, String)>,
    busy: &HashSet<Uuid>,
) -> Option<String> {
    let area = image_area(stor);
    let recent = age(meta, now_ns) < GRACE;
    let Some((uuid, name)) = parse_area_key(&area, key) else {
        return Some("not an image object".into());
    };
    if busy.contains(&uuid) {
        return None; // a registration is writing here
    }
    if is_temp_name(name) {
        return (!recent).then(|| format!("stale temporary file (modified {})", meta.mtime));
    }
    if referenced.contains(&(stor, key.to_string())) {
        return None;
    }
    match images.get(&uuid) {
        None => Some(format!("no image {uuid}")),
        // Just written by AddImageFile, not yet recorded: leave it.
        Some(_) if recent => None,
        Some(state) => Some(format!("not referenced by image {uuid} ({state})")),
    }
}

/// Everything in the upload areas, listed before the upload rows are read
/// (a staging file is written before the row that names it is committed).
/// With a directory manta store, staging is that same directory (listed once).
async fn list_upload_areas(state: &Services<'_>) -> Result<Vec<(StoreName, String, ObjectMeta)>> {
    let stores = &state.images.stores;
    let staging_is_manta = stores
        .get(StoreName::Staging)
        .same_place(stores.get(StoreName::Manta));
    let mut listed = Vec::new();
    for &(name, prefix) in UPLOAD_AREAS {
        if name == StoreName::Staging && staging_is_manta {
            continue;
        }
        for (key, meta) in stores.get(name).list(prefix).await? {
            if !key.ends_with('/') {
                listed.push((name, key, meta));
            }
        }
    }
    Ok(listed)
}

/// The upload id of a key in an upload area (`.../<id>`), and for a staging
/// file (`.../<id>.<first offset>`) that offset.
fn upload_key_parts(key: &str) -> Option<(Uuid, Option<u64>)> {
    let name = key.rsplit('/').next()?;
    let (id, from) = match name.split_once('.') {
        Some((id, from)) => (id, Some(from.parse().ok()?)),
        None => (name, None),
    };
    Some((Uuid::parse_str(id).ok()?, from))
}

/// The upload id of a piece of an upload kept in the object store
/// (`.../<id>.pieces/part-<at>-<fence>` or `.../<id>.pieces/tail-…`).
fn piece_key_upload(key: &str) -> Option<Uuid> {
    let mut segs = key.rsplit('/');
    let name = segs.next()?;
    if !(name.starts_with("part-") || name.starts_with("tail-")) {
        return None;
    }
    let dir = segs
        .next()?
        .strip_suffix(crate::store::pieces::PIECES_DIR)?;
    Uuid::parse_str(dir).ok()
}

/// Upload data that no upload row names (older than [`GRACE`]). Of an
/// upload that still exists only staging files it has moved past go: those
/// before its current one (a crash between restaging and commit), or all of
/// them once it no longer stages. Anything else of a live upload stays,
/// whatever the row says (a crash between two steps of its completion).
async fn upload_orphans(
    state: &Services<'_>,
    listed: Vec<(StoreName, String, ObjectMeta)>,
    now_ns: u128,
) -> Result<Vec<Orphan>> {
    let rows = state.db.read(|c| c.upload_list(None)).await?;
    let live: HashSet<(StoreName, String)> =
        rows.iter().map(|u| (u.store, u.data_key.clone())).collect();
    // Pieces of uploads kept whole in the object store (`store::pieces`).
    let named: HashSet<&str> = rows
        .iter()
        .flat_map(|u| {
            u.pieces
                .iter()
                .flat_map(|p| p.all().map(|x| x.key.as_str()))
        })
        .collect();
    let staged_from: HashMap<Uuid, Option<u64>> = rows
        .iter()
        .map(|u| (u.id, u.multipart.as_ref().map(|m| m.staged_from)))
        .collect();
    Ok(listed
        .into_iter()
        .filter_map(|(stor, key, meta)| {
            if live.contains(&(stor, key.clone())) || age(&meta, now_ns) < GRACE {
                return None;
            }
            if let Some(id) = piece_key_upload(&key) {
                if named.contains(key.as_str()) {
                    return None;
                }
                let why = match staged_from.get(&id) {
                    None => format!("piece of upload {id}, which no longer exists"),
                    Some(_) => format!("piece of upload {id} that its row does not name"),
                };
                return Some(Orphan {
                    stor,
                    key,
                    meta,
                    why,
                });
            }
            let why = match upload_key_parts(&key) {
                None => "not upload data".to_string(),
                Some((id, from)) => match staged_from.get(&id) {
                    None => format!("no upload {id}"),
                    Some(None) if from.is_some() => {
                        format!("staging file of upload {id}, which no longer stages")
                    }
                    Some(Some(current)) if from.is_some_and(|f| f < *current) => {
                        format!("superseded staging file of upload {id}")
                    }
                    Some(_) => return None,
                },
            };
            Some(Orphan {
                stor,
                key,
                meta,
                why,
            })
        })
        .collect())
}

/// `imgapi gc`: expired uploads, expired placeholders, and objects in the
/// image areas of the `local` and `manta` stores that no image references
/// (stale temporary files older than [`GRACE`] too). With `yes` false it
/// only prints what it would delete.
pub async fn gc<W: Write>(state: &Services<'_>, yes: bool, out: &mut W) -> Result<GcSummary> {
    let verb = if yes { "delete" } else { "would delete" };
    let mut sum = GcSummary::default();
    let now = state.images.clock.timestamp();
    sum.uploads = gc_expired_uploads(state, now, yes, verb, out).await?;
    let (placeholders, doomed_uuids) = gc_expired_placeholders(state, now, yes, verb, out).await?;
    sum.placeholders = placeholders;
    let orphans = find_orphans(state, yes, &doomed_uuids).await?;
    for o in &orphans {
        if yes && !delete_orphan(state, o, &mut sum, out).await? {
            continue;
        }
        sum.objects += 1;
        sum.object_bytes += o.meta.size;
        writeln!(
            out,
            "{verb} {} {} ({} bytes): {}",
            o.stor, o.key, o.meta.size, o.why
        )?;
    }
    write_gc_summary(&sum, yes, out)?;
    Ok(sum)
}

/// `gc`'s first phase: the uploads idle past their expiry, printed, and
/// (with `yes`) reaped; how many.
async fn gc_expired_uploads<W: Write>(
    state: &Services<'_>,
    now: Timestamp,
    yes: bool,
    verb: &str,
    out: &mut W,
) -> Result<usize> {
    let expired = { state.db.read(move |c| c.upload_expired(now)).await? };
    for u in &expired {
        writeln!(
            out,
            "{verb} upload {}: expired {} ({}, {} of {} bytes)",
            u.id,
            u.expires_at,
            u.state.as_str(),
            u.offset,
            u.length
        )?;
    }
    Ok(if yes {
        state.uploads.reap_expired().await?
    } else {
        expired.len()
    })
}

/// `gc`'s second phase: the expired placeholders whose registration is
/// not running, printed, and (with `yes`) deleted with their stored
/// files; how many, and the uuids of those found doomed.
async fn gc_expired_placeholders<W: Write>(
    state: &Services<'_>,
    now: Timestamp,
    yes: bool,
    verb: &str,
    out: &mut W,
) -> Result<(usize, HashSet<Uuid>)> {
    let busy = busy_images(state).await?;
    let doomed: Vec<Image> = state
        .db
        .read(move |c| {
            let mut out = Vec::new();
            for u in c.image_expired_placeholders(now)? {
                if busy.contains(&u) {
                    continue;
                }
                if let Some(img) = c.image_get(u)? {
                    out.push(img);
                }
            }
            Ok::<_, Error>(out)
        })
        .await?;
    for img in &doomed {
        writeln!(
            out,
            "{verb} placeholder {} ({}, expired {})",
            img.uuid,
            img.state().as_str(),
            img.expires_at.as_deref().unwrap_or("?")
        )?;
    }
    let doomed_uuids: HashSet<Uuid> = doomed.iter().map(|i| i.uuid).collect();
    if !yes {
        return Ok((doomed.len(), doomed_uuids));
    }
    let gone = delete_placeholders(state, now, doomed_uuids.clone()).await?;
    for img in &gone {
        state.images.remove_stored(img).await;
    }
    Ok((gone.len(), doomed_uuids))
}

/// Delete the image rows of the `candidates` that are still expired
/// placeholders and have no pending registration, in one transaction;
/// the images deleted.
async fn delete_placeholders(
    state: &Services<'_>,
    now: Timestamp,
    candidates: HashSet<Uuid>,
) -> Result<Vec<Image>> {
    state
        .db
        .write(move |c| {
            let still: HashSet<Uuid> = c.image_expired_placeholders(now)?.into_iter().collect();
            let mut gone = Vec::new();
            for u in candidates {
                let running = c
                    .job_get(u)?
                    .is_some_and(|job| job.state == jobs::JobState::Pending);
                if !still.contains(&u) || running {
                    continue;
                }
                if let Some(img) = c.image_get(u)? {
                    c.image_delete(u)?;
                    gone.push(img);
                }
            }
            Ok::<_, Error>(gone)
        })
        .await
}

/// `gc`'s third phase, finding: the orphaned objects of the image areas
/// and of the upload areas. The stores are listed before the database is
/// read: an object is always written after its image row, so whatever
/// was listed has its image (if any) in what is read next. In a dry run
/// (`yes` false), the images of `doomed_uuids` count as gone.
async fn find_orphans(
    state: &Services<'_>,
    yes: bool,
    doomed_uuids: &HashSet<Uuid>,
) -> Result<Vec<Orphan>> {
    let upload_data = list_upload_areas(state).await?;
    let mut listed: Vec<(StoreName, String, ObjectMeta)> = Vec::new();
    for &stor in STORS {
        let store = state.images.stores.get(stor);
        for (key, meta) in store.list(&image_area(stor)).await? {
            if !key.ends_with('/') {
                listed.push((stor, key, meta));
            }
        }
    }
    let all = state.db.read(|c| c.image_all()).await?;
    let busy = busy_images(state).await?;
    let mut images: HashMap<Uuid, &'static str> = HashMap::new();
    let mut referenced: HashSet<(StoreName, String)> = HashSet::new();
    for img in &all {
        // (Dry run: the files of a doomed placeholder go with it, so they
        // are not listed again; anything else under its uuid is an orphan.)
        for t in targets_of(img) {
            referenced.insert((t.stor, t.key));
        }
        if yes || !doomed_uuids.contains(&img.uuid) {
            images.insert(img.uuid, img.state().as_str());
        }
    }
    let now_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut orphans: Vec<Orphan> = listed
        .into_iter()
        .filter_map(|(stor, key, meta)| {
            let why = classify(stor, &key, &meta, now_ns, &images, &referenced, &busy)?;
            Some(Orphan {
                stor,
                key,
                meta,
                why,
            })
        })
        .collect();
    orphans.extend(upload_orphans(state, upload_data, now_ns).await?);
    Ok(orphans)
}

/// Delete the orphan `o`, unless it was rewritten since it was listed
/// (printed as kept) or its store fails (printed, and counted in `sum`);
/// whether it was deleted.
async fn delete_orphan<W: Write>(
    state: &Services<'_>,
    o: &Orphan,
    sum: &mut GcSummary,
    out: &mut W,
) -> Result<bool> {
    let store = state.images.stores.get(o.stor);
    // Not if it was rewritten since it was listed.
    match store.head(&o.key).await {
        Ok(Some(m)) if unchanged(&o.meta, &m) => {}
        Ok(_) => {
            writeln!(out, "keep {} {}: changed meanwhile", o.stor, o.key)?;
            return Ok(false);
        }
        Err(e) => {
            sum.errors += 1;
            writeln!(out, "error {} {}: {}", o.stor, o.key, describe(e))?;
            return Ok(false);
        }
    }
    if let Err(e) = store.delete(&o.key).await {
        sum.errors += 1;
        writeln!(out, "error deleting {} {}: {}", o.stor, o.key, describe(e))?;
        return Ok(false);
    }
    Ok(true)
}

/// `gc`'s summary line: what it deleted, or (dry run) would delete.
fn write_gc_summary<W: Write>(sum: &GcSummary, yes: bool, out: &mut W) -> Result<()> {
    if yes {
        writeln!(
            out,
            "gc: deleted {} expired upload(s), {} expired placeholder(s), {} orphaned object(s) ({} bytes); {} error(s)",
            sum.uploads, sum.placeholders, sum.objects, sum.object_bytes, sum.errors
        )?;
    } else {
        writeln!(
            out,
            "gc (dry run): would delete {} expired upload(s), {} expired placeholder(s), {} orphaned object(s) ({} bytes); run with --yes to delete",
            sum.uploads, sum.placeholders, sum.objects, sum.object_bytes
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(age_secs: u64, now_ns: u128) -> ObjectMeta {
        ObjectMeta {
            size: 1,
            mtime: "t".into(),
            mtime_ns: now_ns - u128::from(age_secs) * 1_000_000_000,
            etag: None,
        }
    }

    #[test]
    fn image_areas_match_the_key_layout() {
        assert_eq!(image_area("local"), "images/");
        assert_eq!(image_area("manta"), "imgapi/images/");
        let u = Uuid::new_v4();
        for &stor in STORS {
            let k = image_file_key(stor, &u);
            assert_eq!(parse_area_key(&image_area(stor), &k), Some((u, "file0")));
        }
        let s = u.to_string();
        assert_eq!(
            parse_area_key("images/", &format!("images/xyz/{s}/file0")),
            None
        );
        assert_eq!(
            parse_area_key("images/", &format!("images/{s}/file0")),
            None
        );
        assert_eq!(
            parse_area_key("images/", &format!("images/{}/{s}/a/b", &s[..3])),
            None
        );
    }

    #[test]
    fn rewritten_objects_are_noticed() {
        let m = |size, ns: u128, etag: Option<&str>| ObjectMeta {
            size,
            mtime: String::new(),
            mtime_ns: ns,
            etag: etag.map(str::to_string),
        };
        let s = 1_000_000_000u128;
        // files: exact mtime
        assert!(unchanged(&m(1, 5 * s + 7, None), &m(1, 5 * s + 7, None)));
        assert!(!unchanged(&m(1, 5 * s + 7, None), &m(1, 5 * s + 8, None)));
        assert!(!unchanged(&m(1, 5, None), &m(2, 5, None)));
        // S3: ETags (quoted or not), else the second
        assert!(unchanged(
            &m(1, 5 * s + 7, Some("\"a\"")),
            &m(1, 5 * s, Some("a"))
        ));
        assert!(!unchanged(&m(1, 5 * s, Some("a")), &m(1, 5 * s, Some("b"))));
        assert!(unchanged(&m(1, 5 * s + 7, None), &m(1, 5 * s, Some("a"))));
        assert!(!unchanged(&m(1, 5 * s + 7, None), &m(1, 6 * s, Some("a"))));
    }

    #[test]
    fn classification() {
        let now = 10_000_000_000_000_000u128;
        let (live, gone, busy_u) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let images: HashMap<Uuid, &'static str> = [(live, "active"), (busy_u, "creating")]
            .into_iter()
            .collect();
        let referenced: HashSet<(StoreName, String)> =
            [(StoreName::Local, image_file_key("local", &live))]
                .into_iter()
                .collect();
        let busy: HashSet<Uuid> = [busy_u].into_iter().collect();
        let c = |stor: &str, key: &str, age: u64| {
            let stor = StoreName::stor(stor).expect("a stor");
            classify(stor, key, &meta(age, now), now, &images, &referenced, &busy)
        };
        // referenced
        assert_eq!(c("local", &image_file_key("local", &live), 99_999), None);
        // same image, other stor: unreferenced, once old enough
        assert!(c("manta", &image_file_key("manta", &live), 7200).is_some());
        assert_eq!(c("manta", &image_file_key("manta", &live), 60), None);
        // no such image: at once
        assert!(c("local", &image_file_key("local", &gone), 0).is_some());
        assert!(c("local", &image_icon_key("local", &gone), 0).is_some());
        // registration in progress: never
        assert_eq!(c("manta", &image_file_key("manta", &busy_u), 99_999), None);
        // temporary files: only stale ones
        let tmp = format!("{}/.file0.tmp.abc", image_dir_key("local", &live));
        assert_eq!(c("local", &tmp, 60), None);
        assert!(c("local", &tmp, 7200).is_some());
        // not the server's layout
        assert!(c("local", "images/junk", 0).is_some());
    }
}
