//! Image endpoints: ListImages, GetImage, DeleteImage, Add/RemoveImageAcl,
//! CloneImage, and what every image endpoint shares (rendering, Etag,
//! conditionals). CreateImage is `create.rs`, the `?action=` family
//! `actions.rs`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::channels::{ChannelCtx, channel_ctx};
use super::extract::{ImageCtx, NoRender, Params, json_body};
use super::{ApiVersion, AppState, json_response};
use crate::db::images::{Listed, Select};
use crate::error::{Error, FieldCode};
use crate::identity::Caller;
use crate::manifest::{Image, RenderOpts};

/// How to render images for this request.
pub(super) fn render_opts(
    st: &AppState,
    p: &Params,
    caller: &Caller,
    v: ApiVersion,
) -> Result<RenderOpts, Error> {
    let admin = p.bool("inclAdminFields")?.unwrap_or(false);
    if admin && !caller.authenticated {
        return Err(Error::Unauthorized(
            "inclAdminFields requires authentication".into(),
        ));
    }
    Ok(RenderOpts {
        admin_fields: admin,
        // `channels` only for Accept-Version >= 2 on a server with channels
        channels: v.0 >= 2 && !st.config.channels.is_empty(),
    })
}

/// Resolve the request's channel and, for an image endpoint, check that the
/// image is in it (an image outside the channel is a 404).
pub(super) async fn channel_gate(
    st: &AppState,
    p: &Params,
    caller: &Caller,
    uuid: Option<Uuid>,
    write: bool,
) -> Result<ChannelCtx, Error> {
    let ctx = channel_ctx(st, p, write)?;
    if let (true, Some(u)) = (ctx.is_on(), uuid) {
        let img = st.images.get(caller, u).await?;
        if !ctx.contains(&img) {
            return Err(Error::not_found(format!("image {u} was not found")));
        }
    }
    Ok(ctx)
}

/// An image response with its `Etag`; with admin fields, its download
/// statistics read for it (no other read pays for them).
pub(super) async fn image_response(
    st: &AppState,
    mut img: Image,
    opts: RenderOpts,
) -> Result<Response, Error> {
    if opts.admin_fields {
        img.downloads = st
            .images
            .download_stats(vec![img.uuid])
            .await?
            .remove(&img.uuid);
    }
    let mut r = json_response(StatusCode::OK, &img.to_wire(opts));
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{}\"", img.etag())) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

/// `If-Match` (412) and `If-None-Match` (304) against an entity tag.
pub(super) fn check_conditional(
    headers: &HeaderMap,
    etag: &str,
) -> Result<Option<Response>, Error> {
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && !etag_matches(m, etag)
    {
        return Err(Error::PreconditionFailed(format!(
            "if-match '{m}' didn't match etag '{etag}'"
        )));
    }
    if let Some(m) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && etag_matches(m, etag)
    {
        return Ok(Some(StatusCode::NOT_MODIFIED.into_response()));
    }
    Ok(None)
}

/// ListImages: `GET /images`.
#[utoipa::path(
    get,
    path = "/images",
    operation_id = "ListImages",
    tag = "images",
    summary = "ListImages",
    description = "Filters combine with AND. Tag filters are `tag.KEY=VALUE` query parameters (any \
        number; `tag.KEY=` matches the key with any value). Results are sorted by published_at, at \
        most `limit`.",
    params(
        super::openapi::ListImagesQuery,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, description = "The images", body = [crate::wire::Image]),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn list(State(st): State<AppState>, ctx: ImageCtx) -> Result<Response, Error> {
    let (caller, p) = (&ctx.caller, &ctx.params);
    let Some(mut q) = st.images.list_query(caller, p).await? else {
        return Ok(json_response(StatusCode::OK, &Vec::<Value>::new()));
    };
    q.account = caller.account;
    q.channel = ctx.channel.filter();
    let json = [(header::CONTENT_TYPE, "application/json")];
    // The default rendering is stored with each image: such a body is
    // built from the stored strings, and kept by the node until an image
    // changes; any other is rendered from manifests as it is sent.
    if ctx.opts.is_stored() && st.images.keeps_list(&q) {
        let body = st.images.list_body(caller, q, whole_list_body).await?;
        return Ok((StatusCode::OK, json, body).into_response());
    }
    let select = if ctx.opts.is_stored() {
        Select::Wire
    } else {
        Select::Manifest
    };
    let imgs = st.images.list_json(caller, q, select).await?;
    let downloads = if ctx.opts.admin_fields {
        st.images.download_stats(listed_uuids(&imgs)?).await?
    } else {
        Downloads::new()
    };
    Ok((StatusCode::OK, json, list_body(imgs, ctx.opts, downloads)).into_response())
}

/// The download statistics of a list's images, by uuid.
type Downloads = std::collections::HashMap<Uuid, crate::manifest::DownloadStats>;

/// The uuids of a list's images (read from the stored JSON, nothing else
/// parsed).
fn listed_uuids(imgs: &[Listed]) -> Result<Vec<Uuid>, Error> {
    #[derive(serde::Deserialize)]
    struct Id {
        uuid: Uuid,
    }
    imgs.iter()
        .map(|l| {
            let (Listed::Manifest(json) | Listed::Wire(json)) = l;
            serde_json::from_str::<Id>(json)
                .map(|i| i.uuid)
                .map_err(Error::internal)
        })
        .collect()
}

/// Images rendered per stream chunk of a ListImages body.
const LIST_CHUNK: usize = 32;

/// ListImages' body streamed as the client reads ([`list_chunks`]).
fn list_body(imgs: Vec<Listed>, opts: RenderOpts, downloads: Downloads) -> Body {
    if imgs.is_empty() {
        return Body::from("[]");
    }
    Body::from_stream(futures_util::stream::iter(list_chunks(
        imgs, opts, downloads,
    )))
}

/// ListImages' body in the default rendering, whole (a node keeps it):
/// the [`list_chunks`] of the images' stored list forms.
fn whole_list_body(imgs: Vec<Listed>) -> Result<bytes::Bytes, Error> {
    let mut body = Vec::new();
    for chunk in list_chunks(imgs, RenderOpts::default(), Downloads::new()) {
        body.extend_from_slice(&chunk.map_err(Error::internal)?);
    }
    Ok(body.into())
}

/// ListImages' body, byte for byte what `json_response` writes for the
/// rendered array, produced `LIST_CHUNK` images at a time as the client
/// reads. An image's stored list form is copied as it is; a manifest is
/// parsed and rendered only when its chunk is, so a page of 1 000 is never
/// held parsed or rendered whole.
fn list_chunks(
    imgs: Vec<Listed>,
    opts: RenderOpts,
    downloads: Downloads,
) -> impl Iterator<Item = std::io::Result<bytes::Bytes>> {
    let empty = imgs
        .is_empty()
        .then(|| Ok(bytes::Bytes::from_static(b"[]")));
    let n = imgs.len();
    let mut imgs = imgs.into_iter().enumerate();
    let chunks = std::iter::from_fn(move || {
        let mut buf = Vec::new();
        for (k, img) in imgs.by_ref().take(LIST_CHUNK) {
            buf.extend_from_slice(if k == 0 { b"[\n  " } else { b",\n  " });
            if let Err(e) = list_item(img, opts, &downloads, &mut buf) {
                return Some(Err(std::io::Error::other(e)));
            }
            if k + 1 == n {
                buf.extend_from_slice(b"\n]");
            }
        }
        (!buf.is_empty()).then(|| Ok::<_, std::io::Error>(bytes::Bytes::from(buf)))
    });
    empty.into_iter().chain(chunks)
}

/// One image of a ListImages body as an element of the array (one level
/// of indentation in), written straight into `buf`: its stored list form,
/// which the database keeps for the default rendering only (the caller
/// asks for it only then), or its manifest rendered with `opts`.
fn list_item(
    img: Listed,
    opts: RenderOpts,
    downloads: &Downloads,
    buf: &mut Vec<u8>,
) -> serde_json::Result<()> {
    match img {
        Listed::Wire(w) => {
            debug_assert!(opts.is_stored());
            buf.extend_from_slice(w.as_bytes());
            Ok(())
        }
        Listed::Manifest(m) => {
            let mut img = serde_json::from_str::<Image>(&m)?;
            img.downloads = downloads.get(&img.uuid).copied();
            img.write_listed(opts, buf)
        }
    }
}

/// GetImage: `GET /images/{uuid}`.
#[utoipa::path(
    get,
    path = "/images/{uuid}",
    operation_id = "GetImage",
    tag = "images",
    summary = "GetImage",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::IfMatch,
        super::openapi::IfNoneMatch,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 304, response = super::openapi::NotModified),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn get_image(
    State(st): State<AppState>,
    ctx: ImageCtx,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let img = st.images.get(&ctx.caller, ctx.uuid).await?;
    if let Some(r) = check_conditional(&headers, &img.etag())? {
        return Ok(r);
    }
    image_response(&st, img, ctx.opts).await
}

/// DeleteImage: `DELETE /images/{uuid}` → 204.
#[utoipa::path(
    delete,
    path = "/images/{uuid}",
    operation_id = "DeleteImage",
    tag = "images",
    summary = "DeleteImage",
    description = "Images naming it as `origin` block it (422 ImageHasDependentImages).",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        (
            "force_all_channels" = Option<bool>,
            Query,
            description = "On a server with channels, an image in several channels only leaves the \
                request's channel unless this is true",
        ),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn delete(
    State(st): State<AppState>,
    ctx: ImageCtx<NoRender>,
) -> Result<Response, Error> {
    let (caller, uuid) = (&ctx.caller, ctx.uuid);
    // On a channel server an image in several channels leaves only the
    // request's channel, unless force_all_channels=true.
    if let ChannelCtx::One(c) = ctx.channel
        && !ctx.params.bool("force_all_channels")?.unwrap_or(false)
    {
        let img = st.images.get(caller, uuid).await?;
        if img.channels.len() > 1 {
            st.images
                .modify(caller, uuid, None, move |img| {
                    img.channels.retain(|x| *x != c);
                    Ok(())
                })
                .await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    st.images.delete(caller, uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// AddImageAcl / RemoveImageAcl: `POST /images/{uuid}/acl?action=add|remove`.
#[utoipa::path(
    post,
    path = "/images/{uuid}/acl",
    operation_id = "ImageAcl",
    tag = "images",
    summary = "AddImageAcl / RemoveImageAcl",
    params(
        super::openapi::ImageAclQuery,
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
    ),
    request_body(content = [uuid::Uuid]),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn acl(State(st): State<AppState>, ctx: ImageCtx, body: Body) -> Result<Response, Error> {
    let add = match ctx.params.get("action").unwrap_or("add") {
        "" | "add" => true,
        "remove" => false,
        a => {
            return Err(Error::invalid_param(
                "action",
                FieldCode::Invalid,
                format!("\"{a}\" is not a valid action"),
            ));
        }
    };
    let Value::Array(items) = json_body(body).await? else {
        return Err(Error::invalid_param(
            "acl",
            FieldCode::Invalid,
            "invalid image \"acl\" (not an array)",
        ));
    };
    let mut accounts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        match it
            .as_str()
            .filter(|s| crate::manifest::validate::is_uuid(s))
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            Some(u) => accounts.push(u),
            None => {
                return Err(Error::invalid_param(
                    "acl",
                    FieldCode::Invalid,
                    format!("invalid image \"acl\" (item {i} is not a UUID)"),
                ));
            }
        }
    }
    let img = st
        .images
        .change_acl(&ctx.caller, ctx.uuid, add, accounts)
        .await?;
    image_response(&st, img, ctx.opts).await
}

#[cfg(test)]
mod list_body_tests {
    use super::*;

    /// Images with every optional field, some without, odd characters.
    fn images() -> Vec<Image> {
        (0..100u32)
            .map(|i| {
                let mut v = serde_json::json!({
                    "v": 2,
                    "uuid": Uuid::from_u128(i as u128 * 7919),
                    "owner": Uuid::from_u128(1 + (i % 3) as u128),
                    "name": format!("img-{i} \"quoted\"\n\t\u{e9}\u{1F600}"),
                    "version": format!("1.{i}"),
                    "activated": i % 5 != 0,
                    "disabled": i % 7 == 0,
                    "public": i % 2 == 0,
                    "type": "zone-dataset",
                    "os": "smartos",
                    "published_at": "2020-01-01T00:00:00.000Z",
                    "files": [{"sha1": "ab", "size": i, "compression": "gzip",
                               "stor": "local", "content_md5": "x", "mtime": "m"}],
                });
                let m = v.as_object_mut().unwrap();
                if i % 2 == 0 {
                    m.insert("description".into(), "multi\nline\r\n<>&'".into());
                    m.insert("acl".into(), serde_json::json!([Uuid::from_u128(9)]));
                    m.insert(
                        "tags".into(),
                        serde_json::json!({"a": 1, "b": {"c": [1, "2", null]}}),
                    );
                    m.insert(
                        "requirements".into(),
                        serde_json::json!({"min_ram": 512, "networks": []}),
                    );
                    m.insert("billing_tags".into(), serde_json::json!(["x", ""]));
                    m.insert("channels".into(), serde_json::json!(["dev"]));
                }
                if i % 3 == 0 {
                    m.insert("homepage".into(), "".into());
                    m.insert("users".into(), serde_json::json!([{"name": "root"}]));
                    m.insert("generate_passwords".into(), true.into());
                }
                // Every state: placeholders (with an error, shown only
                // when failed, and an expiry, never shown), unactivated,
                // disabled, active; and the rarer fields.
                match i % 11 {
                    1 => {
                        m.insert("placeholder".into(), "creating".into());
                        m.insert("expires_at".into(), "2020-01-02T00:00:00.000Z".into());
                        m.insert("error".into(), serde_json::json!({"message": "x"}));
                    }
                    2 => {
                        m.insert("placeholder".into(), "failed".into());
                        m.insert("expires_at".into(), "2020-01-02T00:00:00.000Z".into());
                        m.insert(
                            "error".into(),
                            serde_json::json!({"code": "E", "message": "m\u{0}"}),
                        );
                    }
                    3 => {
                        m.insert("generate_passwords".into(), false.into());
                        m.insert("eula".into(), "e".into());
                        m.insert("urn".into(), "".into());
                        m.insert("nic_driver".into(), "virtio".into());
                        m.insert("disk_driver".into(), "".into());
                        m.insert("cpu_type".into(), "host".into());
                        m.insert("image_size".into(), 10240.into());
                        m.insert("origin".into(), Uuid::from_u128(5).to_string().into());
                        m.insert("traits".into(), serde_json::json!({"t": true}));
                        m.insert("inherited_directories".into(), serde_json::json!(["/opt"]));
                        m.insert(
                            "icon".into(),
                            serde_json::json!({"sha1": "s", "size": 1,
                                "content_type": "image/png", "content_md5": "m",
                                "mtime": "t", "stor": "local"}),
                        );
                        m.insert("files".into(), serde_json::json!([]));
                    }
                    4 => {
                        m.insert("published_at".into(), Value::Null);
                        m.insert("description".into(), "".into());
                        m.insert("tags".into(), serde_json::json!({}));
                        m.insert("acl".into(), serde_json::json!([]));
                    }
                    _ => {}
                }
                serde_json::from_value(v).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_streamed_list_is_the_body_json_response_wrote() {
        let all = images();
        for n in [
            0,
            1,
            2,
            LIST_CHUNK - 1,
            LIST_CHUNK,
            LIST_CHUNK + 1,
            all.len(),
        ] {
            for admin_fields in [false, true] {
                for channels in [false, true] {
                    let opts = RenderOpts {
                        admin_fields,
                        channels,
                    };
                    let imgs = all[..n].to_vec();
                    let out: Vec<Value> = imgs.iter().map(|i| i.render(opts)).collect();
                    let want = serde_json::to_vec_pretty(&out).unwrap();
                    // as the database stores them
                    let stored = imgs
                        .iter()
                        .map(|i| Listed::Manifest(serde_json::to_string(i).unwrap()))
                        .collect();
                    assert_listed(stored, opts, &want, &format!("{n} images, {opts:?}")).await;
                }
            }
        }
    }

    /// The body `list_chunks` streams for `stored` is `want`, and so is
    /// the whole body a node keeps (the default rendering).
    async fn assert_listed(stored: Vec<Listed>, opts: RenderOpts, want: &[u8], what: &str) {
        if opts.is_stored() {
            let whole = whole_list_body(stored.clone()).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(want),
                "{what}, whole"
            );
        }
        let body = list_body(stored, opts, Downloads::new());
        let got = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "{what}"
        );
    }

    /// The body built from the stored list form of each image (what the
    /// database keeps in `images.wire`), from manifests, and from a mix of
    /// both (images stored before the column was filled), is the body
    /// `json_response` wrote for the rendered array: every state, every
    /// optional field, odd characters.
    #[tokio::test]
    async fn the_list_from_stored_json_is_the_rendered_list() {
        let all = images();
        let states: std::collections::BTreeSet<&str> =
            all.iter().map(|i| i.state().as_str()).collect();
        assert_eq!(states.len(), 5, "{states:?}");
        let opts = RenderOpts::default();
        assert!(opts.is_stored());
        for n in [1, 2, LIST_CHUNK, LIST_CHUNK + 1, all.len()] {
            let imgs = &all[..n];
            let out: Vec<Value> = imgs.iter().map(|i| i.render(opts)).collect();
            let want = serde_json::to_vec_pretty(&out).unwrap();
            for mix in [0, 1, 2] {
                let stored: Vec<Listed> = imgs
                    .iter()
                    .enumerate()
                    .map(|(k, i)| {
                        if mix == 0 || (mix == 1 && k % 3 == 1) {
                            Listed::Manifest(serde_json::to_string(i).unwrap())
                        } else {
                            Listed::Wire(i.listed_json().unwrap())
                        }
                    })
                    .collect();
                assert_listed(stored, opts, &want, &format!("{n} images, mix {mix}")).await;
            }
        }
    }

    /// The stored list form is the default rendering only: every other
    /// rendering changes some image's JSON (so a request asking for it
    /// must be rendered from manifests, as `list` does).
    #[test]
    fn other_renderings_differ_from_the_stored_form() {
        let all = images();
        for opts in [
            RenderOpts {
                admin_fields: true,
                channels: false,
            },
            RenderOpts {
                admin_fields: false,
                channels: true,
            },
        ] {
            assert!(!opts.is_stored());
            assert!(all.iter().any(|i| {
                let mut buf = Vec::new();
                i.write_listed(opts, &mut buf).unwrap();
                buf != i.listed_json().unwrap().into_bytes()
            }));
        }
    }
}

/// The query parameters CloneImage understands.
const CLONE_PARAMS: [&str; 3] = ["account", "channel", "inclAdminFields"];

/// CloneImage: `POST /images/{uuid}/clone?account=UUID`.
#[utoipa::path(
    post,
    path = "/images/{uuid}/clone",
    operation_id = "CloneImage",
    tag = "images",
    summary = "CloneImage: the account's own copy of an image shared with it",
    description = "Copies an active image whose `acl` holds `account` (and its chain of origins \
        up to the first operator image, which is kept) for that account: new uuids, `owner` the \
        account, no `acl`, a fresh `published_at`; the cloned origins are disabled. The files \
        are copied by the store (a reflink or hard link on a directory, a server-side copy on \
        S3) with their size and digests. All or nothing. Refusals, in order: `account` not a \
        UUID 422, an image the account cannot see 404, no `account` 422 InvalidParameter, not \
        active 422 ValidationFailed `active`, `account` not in `acl` (the owner's own image \
        too) 422 ImageNotShared, a docker image 422 ValidationFailed `type`. Any other query \
        parameter is 422 InvalidParameter.",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn clone_image(State(st): State<AppState>, ctx: ImageCtx) -> Result<Response, Error> {
    if let Some((k, _)) = ctx
        .params
        .0
        .iter()
        .find(|(k, _)| !CLONE_PARAMS.contains(&k.as_str()))
    {
        return Err(Error::invalid_param(
            k,
            FieldCode::Invalid,
            format!(
                "unknown parameter \"{k}\" (CloneImage takes account, channel and inclAdminFields)"
            ),
        ));
    }
    let img = st.images.clone_image(&ctx.caller, ctx.uuid).await?;
    image_response(&st, img, ctx.opts).await
}
