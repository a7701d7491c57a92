//! The requests every suite makes, written once for both ways of running
//! the server: [`Api::request`] is the one thing a harness provides (over
//! HTTP for [`super::Server`], through the router for [`super::app::App`]),
//! and every helper (tus, images, typed reads) is built on it.

use axum::http::{HeaderMap, Method};
use imgapi::wire;
use serde_json::Value;

/// A response, read whole.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Resp {
    /// The body as JSON (`Null` when empty); panics if it is not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as JSON, `Null` when empty, a string when it is not JSON.
    pub fn value(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
    }

    /// The body parsed as a wire type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} does not parse ({e}): {}",
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as an error body (`{code, message, errors?}`).
    pub fn error(&self) -> wire::ErrorBody {
        self.parse()
    }

    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or(""))
            .unwrap_or("")
    }
}

/// The id of the upload at `loc` (`/uploads/ID`).
pub fn upload_id(loc: &str) -> String {
    loc.rsplit('/')
        .next()
        .expect("an upload location")
        .to_string()
}

/// `?account=A` for `account`, or nothing.
fn as_account(account: Option<&str>) -> String {
    account.map(|a| format!("?account={a}")).unwrap_or_default()
}

/// The requests of the suites, on any harness.
#[allow(async_fn_in_trait)]
pub trait Api {
    /// `method path` with `headers` and `body`: the whole response.
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp;

    /// GET, the whole response.
    async fn fetch(&self, path: &str) -> Resp {
        self.request(Method::GET, path, &[], Vec::new()).await
    }

    /// GET: (status, JSON body).
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.fetch(path).await;
        (r.status, r.value())
    }

    /// POST a JSON body, the whole response.
    async fn post_json(&self, path: &str, body: &Value) -> Resp {
        let body = serde_json::to_vec(body).expect("JSON");
        let json = [("content-type", "application/json")];
        self.request(Method::POST, path, &json, body).await
    }

    /// POST a JSON body: (status, JSON body).
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.post_json(path, &body).await;
        (r.status, r.value())
    }

    /// DELETE: (status, JSON body).
    async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.request(Method::DELETE, path, &[], Vec::new()).await;
        (r.status, r.value())
    }

    /// PUT of raw bytes: (status, JSON body).
    async fn put_bytes(&self, path: &str, data: Vec<u8>) -> (u16, Value) {
        let octets = [("content-type", "application/octet-stream")];
        let r = self.request(Method::PUT, path, &octets, data).await;
        (r.status, r.value())
    }

    /// tus creation: POST /uploads as `account` with `Upload-Metadata`
    /// pairs; returns (status, headers).
    async fn tus_create(
        &self,
        len: u64,
        account: Option<&str>,
        meta: &[(&str, &str)],
    ) -> (u16, HeaderMap) {
        let r = self.tus_creation(len, account, meta).await;
        (r.status, r.headers)
    }

    /// tus creation: POST /uploads as `account` with `Upload-Metadata`
    /// pairs; the whole response.
    async fn tus_creation(&self, len: u64, account: Option<&str>, meta: &[(&str, &str)]) -> Resp {
        use base64::Engine;
        let meta: Vec<String> = meta
            .iter()
            .map(|(k, v)| {
                let v = base64::engine::general_purpose::STANDARD.encode(v);
                format!("{k} {v}")
            })
            .collect();
        let (len, meta) = (len.to_string(), meta.join(","));
        let mut headers = vec![("tus-resumable", "1.0.0"), ("upload-length", len.as_str())];
        if !meta.is_empty() {
            headers.push(("upload-metadata", meta.as_str()));
        }
        let path = format!("/uploads{}", as_account(account));
        self.request(Method::POST, &path, &headers, Vec::new())
            .await
    }

    /// tus creation of an upload of `len` bytes as `account` (201
    /// asserted): its location.
    async fn tus_location(&self, len: u64, account: Option<&str>) -> String {
        let (st, h) = self.tus_create(len, account, &[]).await;
        assert_eq!(st, 201, "POST /uploads");
        h["location"].to_str().expect("location").to_string()
    }

    /// A complete tus upload of `file` as `account` (201 and 204
    /// asserted): its location.
    async fn tus_upload(&self, file: &[u8], account: Option<&str>) -> String {
        let loc = self.tus_location(file.len() as u64, account).await;
        let (st, _, v) = self.tus_patch(&loc, account, 0, file.to_vec()).await;
        assert_eq!(st, 204, "PATCH {loc}: {v}");
        loc
    }

    /// tus PATCH of `data` at `offset` with extra `headers` (replacing the
    /// defaults of the same name): the whole response.
    async fn tus_patch_with(
        &self,
        loc: &str,
        offset: u64,
        headers: &[(&str, &str)],
        data: Vec<u8>,
    ) -> Resp {
        let off = offset.to_string();
        let mut h = vec![
            ("tus-resumable", "1.0.0"),
            ("upload-offset", off.as_str()),
            ("content-type", "application/offset+octet-stream"),
        ];
        for (k, v) in headers {
            h.retain(|(x, _)| !x.eq_ignore_ascii_case(k));
            h.push((*k, *v));
        }
        self.request(Method::PATCH, loc, &h, data).await
    }

    /// tus PATCH of `body` at `offset` (as `account`); returns (status,
    /// headers, body).
    async fn tus_patch(
        &self,
        loc: &str,
        account: Option<&str>,
        offset: u64,
        body: Vec<u8>,
    ) -> (u16, HeaderMap, Value) {
        let path = format!("{loc}{}", as_account(account));
        let r = self.tus_patch_with(&path, offset, &[], body).await;
        let v = r.value();
        (r.status, r.headers, v)
    }

    /// tus HEAD of `loc`: (status, Upload-Offset, headers).
    async fn tus_head(&self, loc: &str) -> (u16, Option<u64>, HeaderMap) {
        let tus = [("tus-resumable", "1.0.0")];
        let r = self.request(Method::HEAD, loc, &tus, Vec::new()).await;
        let off = r.headers.get("upload-offset").map(|v| {
            v.to_str()
                .unwrap()
                .parse()
                .expect("Upload-Offset is a number")
        });
        (r.status, off, r.headers)
    }

    /// tus HEAD of `loc`: (status, Upload-Offset).
    async fn tus_offset(&self, loc: &str) -> (u16, Option<u64>) {
        let (st, off, _) = self.tus_head(loc).await;
        (st, off)
    }

    /// Create an image as `account` (or operator with `owner` in the body).
    async fn create(&self, account: Option<&str>, body: Value) -> Value {
        let (st, v) = self
            .post(&format!("/images{}", as_account(account)), body)
            .await;
        assert_eq!(st, 200, "create: {v}");
        v
    }

    /// Create, add a file and activate; returns the image.
    async fn create_active(&self, owner: &str, name: &str, public: bool, data: &[u8]) -> Value {
        let img = self
            .create(
                None,
                serde_json::json!({"name": name, "version": "1.0.0", "os": "smartos",
                    "type": "zone-dataset", "owner": owner, "public": public}),
            )
            .await;
        let uuid = img["uuid"].as_str().unwrap().to_string();
        self.add_file_and_activate(&uuid, data).await
    }

    /// AddImageFile of `data`, then ActivateImage; returns the image.
    async fn add_file_and_activate(&self, uuid: &str, data: &[u8]) -> Value {
        let path = format!("/images/{uuid}/file?compression=none");
        let (st, v) = self.put_bytes(&path, data.to_vec()).await;
        assert_eq!(st, 200, "add file: {v}");
        let path = format!("/images/{uuid}?action=activate");
        let (st, v) = self.post(&path, serde_json::json!({})).await;
        assert_eq!(st, 200, "activate: {v}");
        v
    }

    /// GetImage (`path_and_query`: `UUID` or `UUID?...`), 200 asserted,
    /// parsed as the wire type a client reads.
    async fn image(&self, path_and_query: &str) -> wire::Image {
        let r = self.fetch(&format!("/images/{path_and_query}")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.parse()
    }

    /// ListImages with `query`, 200 asserted, parsed as wire types.
    async fn images(&self, query: &str) -> Vec<wire::Image> {
        let r = self.fetch(&format!("/images?{query}")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.parse()
    }

    /// `GET {loc}/info`, 200 asserted, parsed as the wire type.
    async fn upload_info(&self, loc: &str) -> wire::UploadInfo {
        let r = self.fetch(&format!("{loc}/info")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.parse()
    }
}
