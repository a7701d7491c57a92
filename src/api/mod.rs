//! HTTP only: the router, the per-request middleware (request id, standard
//! headers, Accept-Version, logging and audit), extractors, and thin
//! handlers that call the services.

mod actions;
mod channels;
mod create;
mod datasets;
mod error;
mod extract;
mod files;
mod images;
mod jobs;
mod metrics;
pub mod openapi;
mod ping;
mod range;
mod unavailable;
mod uploads;
mod usage;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::config::Config;
use crate::db::Db;
use crate::error::Error;
use crate::images::Images;
use crate::metrics::Metrics;
use error::LoggedError;

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub images: Images,
    pub uploads: crate::uploads::Uploads,
    pub registrar: crate::registrar::Registrar,
    pub imports: crate::imports::Imports,
    pub space: crate::space::Space,
    pub server_name: Arc<str>,
    /// This server's counters (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}

/// The API versions this server speaks.
pub const API_VERSIONS: &[semver::Version] =
    &[semver::Version::new(1, 0, 0), semver::Version::new(2, 0, 0)];

/// The negotiated API version of a request.
#[derive(Debug, Clone, Copy)]
pub struct ApiVersion(pub u64);

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let tus = Router::new()
        .route(
            "/uploads",
            get(uploads::list)
                .post(uploads::create)
                .options(uploads::options),
        )
        .route(
            "/uploads/{id}",
            get(uploads::get_data)
                .head(uploads::head)
                .patch(uploads::patch)
                .put(uploads::put)
                .delete(uploads::delete)
                .options(uploads::options),
        )
        .route("/uploads/{id}/info", get(uploads::info))
        .layer(middleware::from_fn(uploads::tus_headers));
    let inner = Router::new()
        .route("/ping", get(ping::ping))
        .route("/openapi.json", get(openapi::spec))
        .route("/metrics", get(metrics::metrics))
        .route("/channels", get(channels::list))
        .route("/datasets", get(datasets::list))
        .route("/datasets/{uuid}", get(datasets::get))
        .route("/datasets/{uuid}/{file}", get(datasets::file))
        .route("/state", get(ping::admin_get_state))
        .route("/usage", get(usage::list))
        .route("/usage/{account}", get(usage::get))
        .route("/authkeys/reload", post(ping::reload_auth_keys))
        .route("/images", get(images::list).post(create::create))
        .route(
            "/images/{uuid}",
            get(images::get_image)
                .post(actions::action)
                .delete(images::delete),
        )
        .route(
            "/images/{uuid}/file",
            put(files::add_file).get(files::get_file),
        )
        .route(
            "/images/{uuid}/file/from-url",
            post(unavailable::add_image_file_from_url),
        )
        .route(
            "/images/{uuid}/icon",
            put(files::add_icon)
                .post(files::add_icon)
                .get(files::get_icon)
                .delete(files::delete_icon),
        )
        .route("/images/{uuid}/acl", post(images::acl))
        .route("/images/{uuid}/clone", post(images::clone_image))
        .route("/images/{uuid}/jobs", get(jobs::image_jobs))
        .route("/jobs/{uuid}", get(jobs::get_job))
        .route("/images/{uuid}/push", post(unavailable::push_docker_image))
        .merge(tus)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(request_trace())
        .layer(middleware::from_fn_with_state(state.clone(), common))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_request(drop_bad_request_id))
        .with_state(state);
    // X-HTTP-Method-Override (tus core) must apply before routing.
    Router::new()
        .fallback_service(inner)
        .layer(middleware::map_request(method_override))
}

/// Methods the API knows; `X-HTTP-Method-Override` may name only these.
const KNOWN_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// An `X-HTTP-Method-Override` that names no known method (refused in
/// [`common`], so the error carries the standard headers).
#[derive(Clone)]
struct BadMethodOverride;

async fn method_override(mut req: Request) -> Request {
    if req.method() == Method::POST
        && let Some(v) = req.headers().get("x-http-method-override")
    {
        let known = v
            .to_str()
            .ok()
            .map(|v| v.trim().to_ascii_uppercase())
            .and_then(|v| KNOWN_METHODS.into_iter().find(|m| m.as_str() == v));
        match known {
            Some(m) => *req.method_mut() = m,
            None => {
                req.extensions_mut().insert(BadMethodOverride);
            }
        }
    }
    req
}

/// The method as a metrics label and in logs: a known method, else `other`.
pub(crate) fn method_label(m: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|k| *k == m)
        .map(Method::as_str)
        .unwrap_or("other")
}

/// At most `max` bytes of `s` (on a char boundary), for logs and messages.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

async fn not_found(req: Request) -> Error {
    Error::not_found(format!("{} does not exist", clip(req.uri().path(), 1024)))
}

async fn method_not_allowed(req: Request) -> Error {
    Error::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        clip(req.method().as_str(), 32),
        clip(req.uri().path(), 1024)
    ))
}

/// Parse `Accept-Version`: none means `~1`; otherwise the highest version
/// of ours that satisfies the range.
pub fn negotiate_version(accept_version: Option<&str>) -> Result<ApiVersion, Error> {
    let raw = accept_version
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("~1");
    let req = semver::VersionReq::parse(raw).map_err(|_| {
        Error::InvalidVersion(format!("{} is not a valid version range", clip(raw, 100)))
    })?;
    API_VERSIONS
        .iter()
        .rev()
        .find(|v| req.matches(v))
        .map(|v| ApiVersion(v.major))
        .ok_or_else(|| {
            Error::InvalidVersion(format!(
                "{} is not supported by this server (versions 1.0.0, 2.0.0)",
                clip(raw, 100)
            ))
        })
}

/// A client's `x-request-id` is kept only when it is non-empty, at most 200
/// bytes and printable; else [`SetRequestIdLayer`] makes a new UUID.
async fn drop_bad_request_id(mut req: Request) -> Request {
    let ok = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| !s.is_empty() && s.len() <= 200);
    if !ok {
        req.headers_mut().remove(X_REQUEST_ID);
    }
    req
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// [`TraceLayer`] with [`request_span`] and no events.
type RequestTrace = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request) -> tracing::Span,
    (),
    (),
    (),
    (),
    (),
>;

/// The span of a request's handler: its request id, method and path (no
/// events of its own: [`common`] logs).
fn request_trace() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> tracing::Span)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(req: &Request) -> tracing::Span {
    let rid = request_id(req.headers());
    let method = method_label(req.method());
    let path = clip(req.uri().path(), 1024);
    tracing::info_span!("request", request_id = %rid, %method, %path)
}

/// The request id, set by [`SetRequestIdLayer`].
fn request_id(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Every request: Accept-Version, standard headers, logging.
async fn common(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let rid = request_id(req.headers()).to_string();
    // Logged and counted values come from closed sets or are clipped.
    let method = method_label(req.method());
    let path = clip(req.uri().path(), 1024).to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let mut req = count_request_bytes(req, &st.metrics);
    let caller_slot = extract::CallerSlot::default();
    req.extensions_mut().insert(caller_slot.clone());
    let version = negotiate_version(
        req.headers()
            .get("accept-version")
            .and_then(|v| v.to_str().ok()),
    );
    let resp = match version.and_then(|v| guard(&st, &req, &route).map(|()| v)) {
        Ok(v) => {
            req.extensions_mut().insert(v);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    let elapsed = start.elapsed();
    let ms = elapsed.as_millis();
    st.metrics.request(
        &route,
        method,
        resp.status().as_u16(),
        elapsed.as_secs_f64(),
    );
    let mut resp = count_response_bytes(resp, &st.metrics);
    let headers = resp.headers_mut();
    headers.insert(header::SERVER, header_or_dash(&st.server_name));
    headers.insert(
        HeaderName::from_static("x-response-time"),
        header_or_dash(&ms.to_string()),
    );
    headers.insert(
        HeaderName::from_static("x-server-name"),
        header_or_dash(&st.server_name),
    );
    let status = resp.status();
    let err = resp.extensions().get::<LoggedError>().cloned();
    let caller = caller_slot.get();
    if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
        tracing::error!(request_id = %rid, %method, %path, status = status.as_u16(),
            error = err.as_ref().map(|e| e.detail.as_str()).unwrap_or(""), "request failed");
    }
    if is_mutation(method) {
        let image = path
            .strip_prefix("/images/")
            .and_then(|r| r.split('/').next())
            .filter(|u| Uuid::parse_str(u).is_ok())
            .unwrap_or("");
        tracing::info!(target: "imgapi::audit", request_id = %rid, caller = %caller, %method, %path, image,
            status = status.as_u16(), error_code = err.as_ref().map(|e| e.code).unwrap_or(""),
            error = err.as_ref().filter(|_| status.is_client_error()).map(|e| e.detail.as_str()).unwrap_or(""),
            elapsed_ms = ms as u64, "audit");
    } else {
        tracing::debug!(request_id = %rid, %method, %path, status = status.as_u16(), elapsed_ms = ms as u64, "request");
    }
    resp
}

/// Count request body bytes as they are read.
fn count_request_bytes(req: Request, metrics: &Arc<Metrics>) -> Request {
    use futures_util::TryStreamExt;
    let metrics = metrics.clone();
    req.map(|b| {
        axum::body::Body::from_stream(b.into_data_stream().inspect_ok(move |c| {
            metrics.add_bytes_in(c.len() as u64);
        }))
    })
}

/// Count response body bytes: at once when the size is known, else as they
/// stream (file downloads).
fn count_response_bytes(resp: Response, metrics: &Arc<Metrics>) -> Response {
    use axum::body::HttpBody;
    use futures_util::TryStreamExt;
    if let Some(n) = resp.body().size_hint().exact() {
        metrics.add_bytes_out(n);
        return resp;
    }
    let metrics = metrics.clone();
    resp.map(|b| {
        axum::body::Body::from_stream(b.into_data_stream().inspect_ok(move |c| {
            metrics.add_bytes_out(c.len() as u64);
        }))
    })
}

fn is_mutation(m: &str) -> bool {
    matches!(m, "POST" | "PUT" | "DELETE" | "PATCH")
}

/// Checks of every request before its handler: the method override, the
/// query string's size, `Host` and `Origin` in `auth = "none"` mode, and the
/// `Content-Type` of JSON endpoints.
fn guard(st: &AppState, req: &Request, route: &str) -> Result<(), Error> {
    if req.extensions().get::<BadMethodOverride>().is_some() {
        return Err(Error::BadRequest(
            "X-HTTP-Method-Override must name one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
                .into(),
        ));
    }
    if req.uri().query().map_or(0, str::len) > MAX_QUERY {
        return Err(Error::BadRequest(format!(
            "the query string is longer than {MAX_QUERY} bytes"
        )));
    }
    if st.config.auth == crate::config::AuthMode::None {
        check_host(&st.config, req.headers())?;
    }
    if is_mutation(req.method().as_str()) && route != "unmatched" && !binary_body_route(route) {
        check_json_content_type(req.headers())?;
    }
    Ok(())
}

/// Longest query string accepted, in bytes.
pub const MAX_QUERY: usize = 16 << 10;

/// Routes whose request body is not JSON (files, icons, tus).
fn binary_body_route(route: &str) -> bool {
    route == "/images/{uuid}/file"
        || route == "/images/{uuid}/icon"
        || route.starts_with("/uploads")
}

/// A JSON endpoint takes a body only as `application/json` (a web page can
/// send `text/plain` or a form anywhere without asking; it cannot send JSON
/// to another origin without a CORS preflight, which this server refuses).
/// An empty body without `Content-Type` is fine.
fn check_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), Error> {
    let ct = headers.get(header::CONTENT_TYPE);
    let is_json = ct.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    });
    if is_json {
        return Ok(());
    }
    let empty = match headers.get(header::CONTENT_LENGTH) {
        Some(n) => n.to_str().ok().and_then(|n| n.trim().parse::<u64>().ok()) == Some(0),
        None => !headers.contains_key(header::TRANSFER_ENCODING),
    };
    if ct.is_none() && empty {
        return Ok(());
    }
    Err(Error::UnsupportedMediaType(format!(
        "this endpoint takes a JSON body: Content-Type must be application/json, not \"{}\"",
        clip(ct.and_then(|v| v.to_str().ok()).unwrap_or(""), 100)
    )))
}

/// With `auth = "none"` every caller is an operator, so only requests that
/// name this server by a loopback name or address, the listen address, or
/// an `allowed_hosts` entry are served: a web page reaching it through DNS
/// rebinding, or posting to it from another origin, is refused.
fn check_host(cfg: &Config, headers: &axum::http::HeaderMap) -> Result<(), Error> {
    if let Some(v) = headers.get(header::HOST) {
        let host = v.to_str().ok().and_then(host_of);
        if !host.is_some_and(|x| host_allowed(cfg, x)) {
            return Err(Error::InvalidHeader(format!(
                "Host \"{}\" is not a name of this server (with auth = \"none\" only loopback \
                 hosts and allowed_hosts are served)",
                clip(v.to_str().unwrap_or(""), 100)
            )));
        }
    }
    if let Some(v) = headers.get(header::ORIGIN) {
        let host = v
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .and_then(|(_, rest)| host_of(rest));
        if !host.is_some_and(|x| host_allowed(cfg, x)) {
            return Err(Error::InvalidHeader(format!(
                "Origin \"{}\" may not use this server (with auth = \"none\" only pages on \
                 loopback hosts and allowed_hosts are served)",
                clip(v.to_str().unwrap_or(""), 100)
            )));
        }
    }
    Ok(())
}

/// The host of `host[:port]` or `[v6]:port`, without brackets.
fn host_of(v: &str) -> Option<&str> {
    let v = v.trim();
    if let Some(rest) = v.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        return (tail.is_empty() || tail.starts_with(':')).then_some(host);
    }
    let host = match v.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => v,
    };
    (!host.is_empty()).then_some(host)
}

fn host_allowed(cfg: &Config, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>()
        && (ip.is_loopback() || ip == cfg.listen.ip())
    {
        return true;
    }
    cfg.allowed_hosts
        .iter()
        .any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(host))
}

/// A header value, or `-` for text that cannot be one.
fn header_or_dash(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A JSON response, pretty-printed like IMGAPI's.
pub(crate) fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_vec_pretty(v) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => Error::internal(e).into_response(),
    }
}
