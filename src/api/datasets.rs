//! SDC 6.5 compatibility: the legacy DSAPI read endpoints. `GET /datasets`
//! and `GET /datasets/{uuid}` return active public images as v1 dataset
//! manifests whose `files[0].url` downloads the file (the `dataset_url` a
//! 6.5 provisioner takes).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AppState, json_response};
use crate::db::images::{ListQuery, StateFilter};
use crate::error::Error;
use crate::identity::Caller;
use crate::manifest::{Image, State as ImgState};

/// The file name a dataset's file is served under.
fn file_name(img: &Image) -> String {
    let ext = match img.files.first().map(|f| f.compression.as_str()) {
        Some("bzip2") => ".zfs.bz2",
        Some("gzip") => ".zfs.gz",
        Some("xz") => ".zfs.xz",
        _ => ".zfs",
    };
    format!("{}-{}{ext}", img.name.replace(['/', ' '], "_"), img.version)
}

/// The base URL clients reached us at.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        // Repeated in every dataset: only a plausible host[:port].
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 262
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// An image as a DSAPI v1 dataset manifest.
fn dataset(img: &Image, base: &str) -> Value {
    let name = file_name(img);
    let f = img.files.first();
    let mut v = json!({
        "uuid": img.uuid,
        "name": img.name,
        "version": img.version,
        "urn": img.urn.clone().unwrap_or_else(|| format!("sdc:sdc:{}:{}", img.name, img.version)),
        "type": if img.type_ == "zvol" { "zvol" } else { "zone-dataset" },
        "os": img.os,
        "description": img.description.clone().unwrap_or_default(),
        "published_at": img.published_at,
        "created_at": img.published_at,
        "updated_at": img.published_at,
        "creator_uuid": img.owner,
        "vendor_uuid": img.owner,
        "creator_name": "sdc",
        "platform_type": "smartos",
        "cloud_name": "sdc",
        "files": [{
            "path": name,
            "sha1": f.map(|f| f.sha1.clone()),
            "size": f.map(|f| f.size),
            "url": format!("{base}/datasets/{}/{name}", img.uuid),
        }],
    });
    if let Some(r) = &img.requirements {
        v["requirements"] = r.clone();
    }
    for (k, val) in [
        ("nic_driver", &img.nic_driver),
        ("disk_driver", &img.disk_driver),
        ("cpu_type", &img.cpu_type),
    ] {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    if let Some(s) = img.image_size {
        v["image_size"] = json!(s);
    }
    v
}

/// Only active public images are datasets.
async fn dataset_image(st: &AppState, uuid: &str) -> Result<Image, Error> {
    let u = Uuid::parse_str(uuid)
        .map_err(|_| Error::not_found(format!("dataset {uuid} does not exist")))?;
    let img = st.images.get(&Caller::operator(), u).await?;
    if !(img.public && img.state() == ImgState::Active) || img.files.is_empty() {
        return Err(Error::not_found(format!("dataset {uuid} does not exist")));
    }
    Ok(img)
}

/// `GET /datasets`: every active public image, as datasets.
#[utoipa::path(
    get,
    path = "/datasets",
    operation_id = "ListDatasets",
    tag = "datasets",
    summary = "Active public images as DSAPI datasets (SDC 6.5)",
    responses(
        (status = 200, description = "Datasets", body = [super::openapi::Dataset]),
        (status = 400, response = super::openapi::BadRequest),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn list(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    let q = ListQuery {
        public: Some(true),
        state: StateFilter::Only(ImgState::Active),
        ..ListQuery::default()
    };
    let imgs = st.images.list(&Caller::operator(), q).await?;
    let base = base_url(&headers);
    let out: Vec<Value> = imgs
        .iter()
        .filter(|i| !i.files.is_empty())
        .map(|i| dataset(i, &base))
        .collect();
    Ok(json_response(StatusCode::OK, &out))
}

/// `GET /datasets/{uuid}`.
#[utoipa::path(
    get,
    path = "/datasets/{uuid}",
    operation_id = "GetDataset",
    tag = "datasets",
    summary = "One dataset",
    params(
        super::openapi::DatasetUuid,
    ),
    responses(
        (status = 200, description = "The dataset", body = super::openapi::Dataset),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn get(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let img = dataset_image(&st, &uuid).await?;
    Ok(json_response(
        StatusCode::OK,
        &dataset(&img, &base_url(&headers)),
    ))
}

/// `GET /datasets/{uuid}/{file}`: the dataset's file (its `url`).
#[utoipa::path(
    get,
    path = "/datasets/{uuid}/{file}",
    operation_id = "GetDatasetFile",
    tag = "datasets",
    summary = "A dataset's file (its files[0].url)",
    params(
        super::openapi::DatasetUuid,
        super::openapi::DatasetFile,
    ),
    responses(
        (
            status = 200,
            description = "The file",
            body = super::openapi::Binary,
            content_type = "application/octet-stream",
            headers(("Content-MD5" = String), ("Etag" = String, description = "Entity tag")),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn file(
    State(st): State<AppState>,
    Path((uuid, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    let img = dataset_image(&st, &uuid).await?;
    if name != file_name(&img) {
        return Err(Error::not_found(format!(
            "dataset {uuid} has no file {name}"
        )));
    }
    let f = img.files[0].clone();
    let stream = st.images.open_file(&img, &f, None).await?;
    let mut r = Response::new(Body::from_stream(stream));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(f.size));
    if let Ok(v) = HeaderValue::from_str(&f.content_md5) {
        headers.insert(header::HeaderName::from_static("content-md5"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", f.sha1)) {
        headers.insert(header::ETAG, v);
    }
    Ok(r)
}
