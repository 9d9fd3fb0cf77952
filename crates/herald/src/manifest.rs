//! The signed manifest of `public/`: `.well-known/herald/manifest.json` lists every
//! published file (path, size, SHA-256, and the statement version it belongs to),
//! `manifest.json.minisig` signs it in minisign's format (Ed25519), and
//! `manifest.pub` is the public key, so `minisign -Vm manifest.json -p manifest.pub`
//! checks it. [`verify_public`] is `herald verify` without an argument.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use herald_content::{Sink, Statement};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

pub const MANIFEST: &str = ".well-known/herald/manifest.json";
pub const SIGNATURE: &str = ".well-known/herald/manifest.json.minisig";
pub const PUBLIC_KEY: &str = ".well-known/herald/manifest.pub";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub base_url: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lang: Option<String>,
    /// The statement version (the digest of its file) this file was made from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}

const FORMAT: &str = "herald-manifest/1";

fn key_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::channel(
        "manifest",
        format!(
            "[site] manifest_key {}: {what} (`herald keys init` makes a test key)",
            path.display()
        ),
    )
}

/// The manifest key: a minisign secret key file, unencrypted (publish runs unattended).
pub struct ManifestKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
}

impl ManifestKey {
    pub fn load(path: &Path) -> Result<ManifestKey, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| key_err(path, e))?;
        let sk_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| key_err(path, crate::context("not a minisign secret key", e)))?;
        let sk = sk_box.into_unencrypted_secret_key().map_err(|e| {
            key_err(
                path,
                format!("{e}: herald needs an unencrypted key (minisign -G -W); keep the file readable only by herald"),
            )
        })?;
        let pk = minisign::PublicKey::from_secret_key(&sk)
            .map_err(|e| key_err(path, crate::context("no public key in it", e)))?;
        Ok(ManifestKey { sk, pk })
    }

    /// The public key file, in minisign's format.
    pub fn public_key_file(&self) -> Result<String, Error> {
        self.pk.to_box().map(|b| b.into_string()).map_err(sign_err)
    }

    pub fn public_key(&self) -> &minisign::PublicKey {
        &self.pk
    }
}

fn sign_err(e: impl Into<crate::BoxError>) -> Error {
    Error::channel("manifest", crate::context("signing the manifest", e))
}

/// Build, sign and put the manifest of everything in `sink` (the three manifest
/// files themselves excepted). `published` are the due statements: a file in a
/// statement's folder belongs to that statement's version.
pub fn write(
    sink: &crate::output::AtomicSink,
    public: &Path,
    base_url: &str,
    published: &[&Statement],
    key: &ManifestKey,
) -> Result<(), Error> {
    let owners: BTreeMap<String, &Statement> =
        published.iter().map(|s| (s.page_path(), *s)).collect();
    let sums = sink.sums()?;
    let files = sums
        .into_iter()
        .filter(|(p, _)| ![MANIFEST, SIGNATURE, PUBLIC_KEY].contains(&p.as_str()))
        .map(|(path, (size, sum))| {
            let folder = path.rfind('/').map_or("", |i| &path[..=i]);
            let owner = owners.get(folder);
            FileEntry {
                statement: owner.map(|s| s.id.clone()),
                lang: owner.map(|s| s.lang.clone()),
                version: owner.map(|s| s.digest.clone()),
                path,
                size,
                sha256: hex::encode(sum),
            }
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT.into(),
        base_url: base_url.into(),
        files,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).map_err(sign_err)?;
    json.push(b'\n');
    // Ed25519 in minisign is hedged (random noise): keep the old signature when it
    // still covers these bytes, so an unchanged site keeps unchanged files.
    let old = std::fs::read_to_string(public.join(SIGNATURE)).ok();
    let signature = match old {
        Some(old) if check(&key.pk, &json, &old).is_ok() => old,
        _ => {
            let trusted = format!(
                "herald manifest of {base_url}: {} files, sha256 {}",
                manifest.files.len(),
                hex::encode(Sha256::digest(&json))
            );
            minisign::sign(
                Some(&key.pk),
                &key.sk,
                Cursor::new(&json),
                Some(&trusted),
                Some("signature from herald's manifest key"),
            )
            .map_err(sign_err)?
            .into_string()
        }
    };
    sink.put(MANIFEST, &json)?;
    sink.put(SIGNATURE, signature.as_bytes())?;
    sink.put(PUBLIC_KEY, key.public_key_file()?.as_bytes())?;
    Ok(())
}

fn check(pk: &minisign::PublicKey, data: &[u8], signature: &str) -> Result<(), String> {
    let sig = minisign::SignatureBox::from_string(signature).map_err(|e| e.to_string())?;
    minisign::verify(pk, &sig, Cursor::new(data), true, false, false).map_err(|e| e.to_string())
}

/// One file that does not match the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Changed(String),
    Missing(String),
    /// In `public/` but not in the manifest.
    Extra(String),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Changed(p) => write!(
                f,
                "changed: {p} (its SHA-256 or size differs from the manifest)"
            ),
            Difference::Missing(p) => write!(f, "missing: {p} (listed in the manifest)"),
            Difference::Extra(p) => write!(f, "not in the manifest: {p}"),
        }
    }
}

/// Check the manifest's signature with `pk`, re-hash every file of `public/` and
/// return what differs (empty: everything matches). An invalid signature is an
/// error, not a difference.
pub fn verify_public(
    public: &Path,
    pk: &minisign::PublicKey,
) -> Result<(usize, Vec<Difference>), Error> {
    fn fail(e: impl Into<crate::BoxError>) -> Error {
        Error::channel("verify", e)
    }
    let json = std::fs::read(public.join(MANIFEST)).map_err(|e| {
        fail(format!(
            "{}: {e}: run herald publish with [site] manifest_key set",
            public.join(MANIFEST).display()
        ))
    })?;
    let sig = std::fs::read_to_string(public.join(SIGNATURE))
        .map_err(|e| fail(crate::context(public.join(SIGNATURE).display(), e)))?;
    check(pk, &json, &sig).map_err(|e| {
        fail(format!(
            "{}: the signature does not verify with the configured key ({e}): the manifest was changed or signed by another key",
            public.join(MANIFEST).display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| fail(crate::context(public.join(MANIFEST).display(), e)))?;
    let mut diffs: Vec<Difference> = manifest
        .files
        .par_iter()
        .filter_map(|f| {
            let path = public.join(&f.path);
            match std::fs::read(&path) {
                Ok(bytes) => (bytes.len() as u64 != f.size
                    || hex::encode(Sha256::digest(&bytes)) != f.sha256)
                    .then(|| Difference::Changed(f.path.clone())),
                Err(_) => Some(Difference::Missing(f.path.clone())),
            }
        })
        .collect();
    let listed: std::collections::HashSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    for entry in walkdir::WalkDir::new(public).sort_by_file_name() {
        let entry = entry.map_err(fail)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel: PathBuf = entry
            .path()
            .strip_prefix(public)
            .map_err(fail)?
            .to_path_buf();
        let rel = rel.to_string_lossy().replace('\\', "/");
        if [MANIFEST, SIGNATURE, PUBLIC_KEY].contains(&rel.as_str()) {
            continue;
        }
        if !listed.contains(rel.as_str()) {
            diffs.push(Difference::Extra(rel));
        }
    }
    diffs.sort_by_key(ToString::to_string);
    Ok((manifest.files.len(), diffs))
}
