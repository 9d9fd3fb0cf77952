//! `herald keys init`: a TEST-ONLY signing setup in one step. An ECDSA P-256 key
//! and a self-signed certificate (rcgen) for `[pdf.signing]`, a minisign key for
//! `[site] manifest_key`, all under `keys/` (which gets its own `.gitignore`), and
//! the settings added to herald.toml. A real deployment uses the organization's
//! certificate instead (docs/pdf.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};

use crate::{Error, Paths};

/// What `init` made.
#[derive(Debug)]
pub struct Made {
    pub dir: PathBuf,
    pub subject: String,
}

fn fail(e: impl Into<crate::BoxError>) -> Error {
    Error::channel("keys", e)
}

/// Write a file only the owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| fail(crate::context(path.display(), e)))?;
    f.write_all(text.as_bytes())
        .map_err(|e| fail(crate::context(path.display(), e)))
}

/// Add `[pdf.signing]` and `[site] manifest_key` to herald.toml's text, or say
/// why not. Paths are relative to herald.toml's folder (`content/`).
fn edit_config(source: &str) -> Result<String, Error> {
    if source.lines().any(|l| l.trim() == "[pdf.signing]") {
        return Err(fail(
            "herald.toml already has [pdf.signing]: remove it first to use test keys",
        ));
    }
    if source
        .lines()
        .any(|l| l.trim_start().starts_with("manifest_key"))
    {
        return Err(fail(
            "herald.toml already sets manifest_key: remove it first to use test keys",
        ));
    }
    let key_line = "manifest_key = \"../keys/manifest.key\"  # TEST ONLY (herald keys init)";
    let mut out = String::new();
    let mut placed = false;
    for line in source.lines() {
        out.push_str(line);
        out.push('\n');
        if !placed && line.trim() == "[site]" {
            out.push_str(key_line);
            out.push('\n');
            placed = true;
        }
    }
    if !placed {
        out.push_str("\n[site]\n");
        out.push_str(key_line);
        out.push('\n');
    }
    out.push_str(
        "\n# TEST ONLY (herald keys init): a self-signed certificate no reader trusts.\n\
         # docs/pdf.md: how to use the organization's certificate and a time-stamping authority.\n\
         [pdf.signing]\n\
         key = \"../keys/signing.key\"\n\
         certificate = \"../keys/signing.pem\"\n",
    );
    Ok(out)
}

/// Make the keys and add the settings. Refuses to overwrite anything.
pub fn init(root: &Path, now: DateTime<Utc>) -> Result<Made, Error> {
    let paths = Paths::new(root);
    let config_path = paths.content.join("herald.toml");
    let source = std::fs::read_to_string(&config_path)
        .map_err(|e| fail(crate::context(config_path.display(), e)))?;
    let config = herald_content::Config::parse(&config_path, &source)
        .map_err(|d| fail(format!("{d}\nfix herald.toml first")))?;
    let edited = edit_config(&source)?;
    // The edited file must still be a valid configuration before anything is written.
    herald_content::Config::parse(&config_path, &edited).map_err(|d| {
        fail(format!(
            "cannot add the settings to herald.toml: {d}\nadd them by hand (docs/pdf.md)"
        ))
    })?;
    let dir = root.join("keys");
    for name in ["signing.key", "signing.pem", "manifest.key", "manifest.pub"] {
        if dir.join(name).exists() {
            return Err(fail(format!(
                "{} exists: herald keys init never overwrites a key; delete keys/ to start again",
                dir.join(name).display()
            )));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| fail(crate::context(dir.display(), e)))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# Private keys: never commit them.\n*\n")
            .map_err(|e| fail(crate::context(ignore.display(), e)))?;
    }

    let org = &config.organization.name;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(crate::context("key generation", e)))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    let cn = format!("{org} (TEST ONLY, herald keys init)");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.clone());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org.clone());
    // Its own trust anchor: NSS (pdfsig, Firefox) trusts a self-signed
    // certificate only as a CA, so it is marked as one that issues nothing.
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::ContentCommitment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    // Valid from 2000, so archives of old statements (signed with their own
    // publication time) verify too; five years ahead.
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(now.year() + 5, 1, 1);
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail(crate::context("certificate", e)))?;
    write_private(&dir.join("signing.key"), &key.serialize_pem())?;
    std::fs::write(dir.join("signing.pem"), cert.pem())
        .map_err(|e| fail(crate::context(dir.join("signing.pem").display(), e)))?;

    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| fail(crate::context("manifest key", e)))?;
    let sk = pair
        .sk
        .to_box(Some("herald manifest key (TEST ONLY, herald keys init)"))
        .map_err(fail)?
        .into_string();
    let pk = pair.pk.to_box().map_err(fail)?.into_string();
    write_private(&dir.join("manifest.key"), &sk)?;
    std::fs::write(dir.join("manifest.pub"), pk)
        .map_err(|e| fail(crate::context(dir.join("manifest.pub").display(), e)))?;

    // Last, so a failure above leaves herald.toml as it was.
    let tmp = config_path.with_extension("toml.tmp");
    std::fs::write(&tmp, &edited).map_err(|e| fail(crate::context(tmp.display(), e)))?;
    std::fs::rename(&tmp, &config_path)
        .map_err(|e| fail(crate::context(config_path.display(), e)))?;
    Ok(Made { dir, subject: cn })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_go_into_an_existing_site_section() {
        let out = edit_config("title = \"T\"\n[site]\nper_page = 10\n").expect("edit");
        assert!(
            out.contains("[site]\nmanifest_key = \"../keys/manifest.key\""),
            "{out}"
        );
        assert!(out.contains("[pdf.signing]\nkey = \"../keys/signing.key\""));
        let out = edit_config("title = \"T\"\n").expect("edit");
        assert!(out.contains("\n[site]\nmanifest_key"), "{out}");
        assert!(edit_config("[pdf.signing]\nkey = \"k\"\n").is_err());
    }
}
