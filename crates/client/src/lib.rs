//! The client verbs of the `imgapi` binary (they act on a server URL, not a
//! data directory): publish, upload, images, file, uploads. Their clap
//! definitions live here; `main.rs` flattens them into the command line.

pub mod config;
pub mod download;
pub mod error;
pub mod hashes;
pub mod hints;
pub mod http;
pub mod images;
pub mod imports;
pub mod output;
pub mod parallel;
pub mod state;
pub mod tus;
pub mod types;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use config::ConnArgs;
use error::Result;
use http::Http;

/// The names of the client verbs (for the grouped `--help`).
pub const VERBS: &[&str] = &[
    "publish",
    "upload",
    "images",
    "file",
    "uploads",
    "import-dir",
    "import-remote",
];

const PUBLISH_EXAMPLES: &str = "\
Examples:
  imgapi publish -m nodejs-1.2.8.imgmanifest -f nodejs-1.2.8.zfs.gz
  IMGAPI_URL=https://images.example.com IMGAPI_TOKEN=... imgapi publish -m m.json -f disk.zfs.xz --wait 600
  # interrupted (Ctrl-C, kill -9, network or server gone)? run the same command again:
  # it resumes from the bytes the server already has.";

const UPLOAD_EXAMPLES: &str = "\
Examples:
  imgapi upload disk.zfs.gz
  imgapi upload --path /jdoe/stor/images/disk.zfs.gz disk.zfs.gz
  imgapi upload --json disk.zfs.gz | jq -r .id";

const IMAGES_EXAMPLES: &str = "\
Examples:
  imgapi images list --name '~node' --os smartos
  imgapi images list --state all --json
  imgapi images get 2b683a82-a066-11e3-97ab-2faa44701c5a
  imgapi images update UUID description='a better base' tags='{\"role\":\"db\"}'
  imgapi images disable UUID
  imgapi images acl add UUID 91ba0e64-2547-11e2-a972-df579e5fddb3
  imgapi images clone UUID --account 91ba0e64-2547-11e2-a972-df579e5fddb3";

const FILE_EXAMPLES: &str = "\
Examples:
  imgapi file get 2b683a82-a066-11e3-97ab-2faa44701c5a -o base-64.zfs.gz
  # interrupted? the same command resumes from base-64.zfs.gz.partial";

const UPLOADS_EXAMPLES: &str = "\
Examples:
  imgapi uploads list
  imgapi uploads abort 3560c262-fc65-0242-a446-7c6d1fb482e3";

const USAGE_EXAMPLES: &str = "\
Examples:
  imgapi usage                     # every account, largest first (operator)
  imgapi usage --account jill      # one account (uuid or login): images, uploads,
                                   # downloads, quotas
  imgapi usage --account jill --json";

const IMPORT_DIR_EXAMPLES: &str = "\
Examples:
  # seed a new server from a usbkey's datasets (NAME.imgmanifest + NAME.zfs.gz):
  imgapi import-dir /usbkey/datasets
  # interrupted? run it again: active images are skipped, partial ones completed.
  imgapi import-dir --json /usbkey/datasets | jq -r '.[] | [.uuid, .result] | @tsv'";

const IMPORT_REMOTE_EXAMPLES: &str = "\
Examples:
  imgapi import-remote 2b683a82-a066-11e3-97ab-2faa44701c5a --source https://images.smartos.org
  imgapi import-remote UUID --source https://updates.tritondatacenter.com --all-origins --skip-owner-check";

/// The client verbs.
// Parsed once per process: boxing the large variants would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Upload an image file (resumably) and register it with its manifest;
    /// waits until the image is active and prints it.
    #[command(after_help = PUBLISH_EXAMPLES)]
    Publish(PublishArgs),
    /// Upload a file resumably (no registration); prints the upload id,
    /// size, sha1 and content_md5.
    #[command(after_help = UPLOAD_EXAMPLES)]
    Upload(UploadArgs),
    /// List, show and change images.
    #[command(after_help = IMAGES_EXAMPLES)]
    Images {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        cmd: ImagesCmd,
    },
    /// Download an image file, resumably, verified against its digests.
    #[command(after_help = FILE_EXAMPLES)]
    File {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        cmd: FileCmd,
    },
    /// Show or end your upload sessions on the server.
    #[command(after_help = UPLOADS_EXAMPLES)]
    Uploads {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        cmd: UploadsCmd,
    },
    /// Seed images from a directory of `*.imgmanifest` files and their image
    /// files (operator): import, upload, activate; active ones are skipped,
    /// partial ones completed.
    #[command(after_help = IMPORT_DIR_EXAMPLES)]
    ImportDir(ImportDirArgs),
    /// Import an image (and its missing origins) from another IMGAPI, on the
    /// server (operator); follows the server's job to its end.
    #[command(after_help = IMPORT_REMOTE_EXAMPLES)]
    ImportRemote(ImportRemoteArgs),
    /// Show what accounts use: one account's images, bytes, unfinished
    /// uploads, downloads and quotas, or every account by bytes (operator).
    #[command(after_help = USAGE_EXAMPLES)]
    Usage {
        #[command(flatten)]
        conn: ConnArgs,
        /// At most this many accounts (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Args, Debug)]
pub struct ImportDirArgs {
    /// The directory: NAME.imgmanifest files, each with its image file named
    /// by its files[0] (path or manta_path) or beside it (NAME.zfs.gz,
    /// NAME.zfs.bz2, NAME.zfs.xz, NAME.zfs, ...).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// MiB per upload request.
    #[arg(long, hide = true, default_value_t = 64)]
    pub chunk_mib: u64,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct ImportRemoteArgs {
    /// The image's uuid.
    pub uuid: String,
    /// The source IMGAPI's URL.
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// Import each missing origin as its own job first, root first (else the
    /// server's one job imports them).
    #[arg(long)]
    pub all_origins: bool,
    /// Do not check that the image's owner exists here.
    #[arg(long)]
    pub skip_owner_check: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The image manifest (JSON): name, version, os, type, ... ; its
    /// files[0] may give compression (else guessed from the file).
    #[arg(short, long, value_name = "MANIFEST.json")]
    pub manifest: PathBuf,
    /// The image file.
    #[arg(short, long, value_name = "FILE")]
    pub file: PathBuf,
    /// Seconds to wait for the image to become active.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub wait: u64,
    /// Send the file as N partial uploads at once (tus concatenation), for
    /// long or lossy links; default from the file size: 1 below 64 MiB, 2
    /// below 256 MiB, else 4. An interrupted upload resumes as it began.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    pub parallel: Option<u16>,
    /// MiB per upload request.
    #[arg(long, hide = true, default_value_t = 64)]
    pub chunk_mib: u64,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The file to upload.
    pub file: PathBuf,
    /// Storage path to write: /LOGIN/stor/... or /assets/...
    #[arg(long)]
    pub path: Option<String>,
    /// MiB per upload request.
    #[arg(long, hide = true, default_value_t = 64)]
    pub chunk_mib: u64,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ImagesCmd {
    /// List images (ListImages filters as flags).
    List(images::ListFilters),
    /// Show one image.
    Get {
        /// The image's uuid.
        uuid: String,
        /// With admin fields: files' store, downloads, last download.
        #[arg(long)]
        admin_fields: bool,
    },
    /// Change an image's fields: KEY=VALUE pairs (VALUE is JSON when it
    /// parses as JSON) and/or a JSON object file.
    Update {
        /// The image's uuid.
        uuid: String,
        #[arg(value_name = "KEY=VALUE")]
        fields: Vec<String>,
        /// A JSON object of fields to change.
        #[arg(short, long, value_name = "FILE.json")]
        file: Option<PathBuf>,
    },
    /// Activate an image whose file is added.
    Activate {
        /// The image's uuid.
        uuid: String,
    },
    /// Disable an image (hidden from provisioning).
    Disable {
        /// The image's uuid.
        uuid: String,
    },
    /// Enable a disabled image.
    Enable {
        /// The image's uuid.
        uuid: String,
    },
    /// Delete an image and its file.
    Delete {
        /// The image's uuid.
        uuid: String,
    },
    /// Make the account's own copy of an image shared with it (its acl
    /// holds the account given with --account, or the token's): a new
    /// image owned by the account, with the same file (copied by the
    /// server, not sent again).
    Clone {
        /// The image's uuid.
        uuid: String,
    },
    /// Add or remove accounts of an image's ACL.
    Acl {
        #[command(subcommand)]
        cmd: AclCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum AclCmd {
    /// Give accounts access to a private image.
    Add {
        /// The image's uuid.
        uuid: String,
        #[arg(required = true, value_name = "ACCOUNT")]
        accounts: Vec<String>,
    },
    /// Take accounts off an image's ACL.
    Remove {
        /// The image's uuid.
        uuid: String,
        #[arg(required = true, value_name = "ACCOUNT")]
        accounts: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FileCmd {
    /// Download an image's file into OUT (via OUT.partial, resumed after any
    /// interruption), verified against its md5, sha1 and size.
    Get {
        /// The image's uuid.
        uuid: String,
        /// Where to write the file.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum UploadsCmd {
    /// List your upload sessions (and which this machine can resume).
    List,
    /// End an upload session and free its bytes.
    Abort {
        /// The upload's id.
        id: String,
    },
}

impl ClientCmd {
    fn conn(&self) -> &ConnArgs {
        match self {
            ClientCmd::Publish(a) => &a.conn,
            ClientCmd::Upload(a) => &a.conn,
            ClientCmd::ImportDir(a) => &a.conn,
            ClientCmd::ImportRemote(a) => &a.conn,
            ClientCmd::Images { conn, .. }
            | ClientCmd::File { conn, .. }
            | ClientCmd::Uploads { conn, .. }
            | ClientCmd::Usage { conn, .. } => conn,
        }
    }
}

fn chunk_bytes(mib: u64) -> Result<u64> {
    if mib == 0 || mib > 1024 {
        return Err(error::ClientError::Usage(
            "--chunk-mib must be from 1 to 1024".into(),
        ));
    }
    Ok(mib << 20)
}

/// Runs a client verb; prints its result and gives the exit code.
pub async fn run(cmd: ClientCmd) -> ExitCode {
    let conn = cmd.conn().clone();
    tokio::select! {
        res = run_inner(cmd) => match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => hints::explain(e, &conn).report(conn.json),
        },
        // Every acknowledged chunk is already saved: stopping here loses
        // nothing a re-run cannot resume.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("imgapi: interrupted; run the same command again to resume");
            ExitCode::from(130)
        }
    }
}

async fn run_inner(cmd: ClientCmd) -> Result<()> {
    let http = Http::new(cmd.conn().resolve()?)?;
    let js = http.conn.json;
    match cmd {
        ClientCmd::Publish(a) => {
            let chunk = chunk_bytes(a.chunk_mib)?;
            let parallel = a.parallel.map(usize::from);
            let p = images::publish(&http, &a.manifest, &a.file, a.wait, chunk, parallel).await?;
            match js {
                true => output::json(&p.to_json()),
                false => print!("{}", output::fields(&p.summary())),
            }
        }
        ClientCmd::Upload(a) => {
            let chunk = chunk_bytes(a.chunk_mib)?;
            let up = tus::upload(&http, &a.file, a.path.as_deref(), chunk, 1).await?;
            tus::forget(&up.key);
            let mut v = up.to_json();
            if let Some(p) = &up.info.path {
                v["path"] = p.as_str().into();
            }
            output::show(&v, js);
        }
        ClientCmd::Images { cmd, .. } => images_cmd(&http, cmd).await?,
        ClientCmd::File {
            cmd: FileCmd::Get { uuid, output: out },
            ..
        } => {
            images::check_uuid("image", &uuid)?;
            let v = download::file_get(&http, &uuid, &out).await?;
            output::show(&v, js);
        }
        ClientCmd::ImportDir(a) => {
            let chunk = chunk_bytes(a.chunk_mib)?;
            imports::import_dir(&http, &a.dir, chunk).await?;
        }
        ClientCmd::ImportRemote(a) => {
            images::check_uuid("image", &a.uuid)?;
            let v = imports::import_remote(
                &http,
                &a.uuid,
                &a.source,
                a.all_origins,
                a.skip_owner_check,
            )
            .await?;
            match js {
                true => output::json(&v.to_json()),
                false => print!("{}", output::fields(&v.summary())),
            }
        }
        ClientCmd::Uploads { cmd, .. } => match cmd {
            UploadsCmd::List => images::uploads_list(&http).await?,
            UploadsCmd::Abort { id } => images::uploads_abort(&http, &id).await?,
        },
        ClientCmd::Usage { limit, .. } => images::usage(&http, limit).await?,
    }
    Ok(())
}

async fn images_cmd(http: &Http, cmd: ImagesCmd) -> Result<()> {
    let js = http.conn.json;
    let show = |img: types::Parsed<types::Image>| output::show(&img.raw, js);
    match cmd {
        ImagesCmd::List(f) => images::list(http, &f).await?,
        ImagesCmd::Get { uuid, admin_fields } => {
            images::check_uuid("image", &uuid)?;
            show(images::get_image_with(http, &uuid, admin_fields).await?)
        }
        ImagesCmd::Update { uuid, fields, file } => {
            images::check_uuid("image", &uuid)?;
            let body = images::update_body(&fields, file.as_deref())?;
            show(images::action(http, &uuid, "update", body).await?)
        }
        ImagesCmd::Activate { uuid } => {
            images::check_uuid("image", &uuid)?;
            show(images::action(http, &uuid, "activate", json!({})).await?)
        }
        ImagesCmd::Disable { uuid } => {
            images::check_uuid("image", &uuid)?;
            show(images::action(http, &uuid, "disable", json!({})).await?)
        }
        ImagesCmd::Enable { uuid } => {
            images::check_uuid("image", &uuid)?;
            show(images::action(http, &uuid, "enable", json!({})).await?)
        }
        ImagesCmd::Delete { uuid } => {
            images::check_uuid("image", &uuid)?;
            images::delete(http, &uuid).await?;
            if js {
                output::json(&json!({"uuid": uuid, "deleted": true}));
            } else {
                println!("deleted image {uuid}");
            }
        }
        ImagesCmd::Clone { uuid } => {
            images::check_uuid("image", &uuid)?;
            show(images::clone(http, &uuid).await?)
        }
        ImagesCmd::Acl { cmd } => {
            let (uuid, action, accounts) = match cmd {
                AclCmd::Add { uuid, accounts } => (uuid, "add", accounts),
                AclCmd::Remove { uuid, accounts } => (uuid, "remove", accounts),
            };
            images::check_uuid("image", &uuid)?;
            for a in &accounts {
                images::check_uuid("account", a)?;
            }
            show(images::acl(http, &uuid, action, &accounts).await?)
        }
    }
    Ok(())
}
