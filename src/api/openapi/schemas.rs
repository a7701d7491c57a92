//! Schemas of the OpenAPI document for shapes that are not wire types: the
//! manifest CreateImage takes (validated as JSON by `manifest::validate`),
//! the action body, DSAPI datasets, the admin state, raw bytes, and the
//! union `POST /images/{uuid}` answers with. They exist only to describe.

#![allow(dead_code)] // Fields and variants are read by the derives only.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat,
    Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// CreateImage input. Any other key is 422 InvalidParameter; `state` is
/// 422 ValidationFailed. A `files` item with `upload` or `path` makes the
/// request a registration (phase two).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "nodejs",
    "version": "1.2.8",
    "os": "smartos",
    "type": "zone-dataset",
    "owner": "86055c40-2547-11e2-8a6b-4bb37edc84ba"
}))]
pub struct Manifest {
    v: Option<u64>,
    /// Defaults to `account`; required for an operator without `account`
    owner: Option<Uuid>,
    #[schema(max_length = 512, pattern = "^[A-Za-z0-9._/ -]+$")]
    name: String,
    #[schema(max_length = 128, pattern = "^[A-Za-z0-9._/+-]+$")]
    version: String,
    #[schema(max_length = 512)]
    description: Option<String>,
    #[schema(format = "uri")]
    homepage: Option<String>,
    #[schema(format = "uri")]
    eula: Option<String>,
    #[schema(inline)]
    r#type: ImageType,
    #[schema(inline)]
    os: ImageOs,
    origin: Option<Uuid>,
    public: Option<bool>,
    disabled: Option<bool>,
    acl: Option<Vec<Uuid>>,
    #[schema(value_type = Option<Object>)]
    requirements: Option<Value>,
    #[schema(inline)]
    users: Option<Vec<ManifestUser>>,
    #[schema(schema_with = billing_tags)]
    billing_tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    traits: Option<Value>,
    #[schema(value_type = Option<Object>)]
    tags: Option<Value>,
    generate_passwords: Option<bool>,
    inherited_directories: Option<Vec<String>>,
    nic_driver: Option<String>,
    disk_driver: Option<String>,
    cpu_type: Option<String>,
    #[schema(minimum = 1)]
    image_size: Option<u64>,
    icon: Option<bool>,
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
    channels: Option<Vec<String>>,
    #[schema(max_items = 1)]
    files: Option<Vec<crate::wire::RegistrationFile>>,
}

fn billing_tags() -> ArrayBuilder {
    ArrayBuilder::new().items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(128)),
    )
}

/// An image's `type`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageType {
    ZoneDataset,
    LxDataset,
    Zvol,
    Docker,
    Lxd,
    Other,
}

/// An image's `os`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageOs {
    Smartos,
    Linux,
    Windows,
    Bsd,
    Illumos,
    Other,
}

/// One of a manifest's `users`.
#[derive(Deserialize, ToSchema)]
pub struct ManifestUser {
    name: Option<String>,
}

/// An active public image as a DSAPI v1 dataset manifest; files[0].url
/// downloads the file.
#[derive(Serialize, ToSchema)]
pub struct Dataset {
    uuid: Uuid,
    name: String,
    version: String,
    urn: Option<String>,
    r#type: Option<String>,
    os: Option<String>,
    #[schema(value_type = Vec<Object>)]
    files: Vec<Value>,
}

/// `GET /state`.
#[derive(Serialize, ToSchema)]
pub struct AdminState {
    #[schema(value_type = Option<Object>)]
    cache: Option<Value>,
    #[schema(value_type = Option<Object>)]
    log: Option<Value>,
    #[serde(rename = "storageTypes")]
    storage_types: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    db: Option<Value>,
}

/// action=import: a full manifest (v2, or v1/DSAPI which is upgraded) with
/// the path's uuid. action=update: the fields to change (`null` deletes a
/// field). Other actions take no body.
pub struct ImageActionBody;

impl PartialSchema for ImageActionBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "action=import: a full manifest (v2, or v1/DSAPI which is upgraded) with the \
                 path's uuid. action=update: the fields to change (`null` deletes a field). Other \
                 actions take no body.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}
impl ToSchema for ImageActionBody {}

/// Raw bytes (files, icons, upload data).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}
impl ToSchema for Binary {}

/// What `POST /images/{uuid}` answers: the image, an export's result, or
/// (action=import-remote) the job started.
pub struct ImageActionResult;

impl PartialSchema for ImageActionResult {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("Image"))
            .item(Ref::from_schema_name("ExportResult"))
            .item(Ref::from_schema_name("ImportStarted"))
            .into()
    }
}
impl ToSchema for ImageActionResult {}

/// A URL (a header's value).
pub struct UriString;

impl PartialSchema for UriString {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uri".into())))
            .into()
    }
}

/// `Cache-Control: no-store`.
pub struct NoStore;

impl PartialSchema for NoStore {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["no-store"]))
            .into()
    }
}
