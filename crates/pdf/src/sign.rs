//! PAdES baseline signatures (ETSI EN 319 142-1): B-B, and B-T when a
//! time-stamping authority is set.
//!
//! The writer adds an invisible signature field (a widget in an AcroForm,
//! `/SigFlags 3`) and a `/Sig` dictionary with a reserved `/Contents`; once the
//! file is serialized, [`Signer::finish`] fills in `/ByteRange` and a detached CMS
//! SignedData over those bytes. Signed attributes are content-type,
//! message-digest and ESS signing-certificate-v2; no signing-time attribute
//! (PAdES puts the claimed time in `/M`, the statement version's publication
//! time). ECDSA P-256 (RFC 6979) and RSA PKCS#1 v1.5 are deterministic, so without
//! a time stamp the same input gives the same bytes.
//!
//! [`verify`] checks a signed file the way `herald verify` needs: the byte range
//! covers the whole file but `/Contents`, the digest, the signature, and the
//! signer's certificate against the configured ones.

use std::path::{Path, PathBuf};

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode, Sequence};
use lopdf::{Dictionary, Document, Object, ObjectId, StringFormat, dictionary};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

use crate::PdfError;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERT_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_TIMESTAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
const ID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// `[pdf.signing]` in herald.toml. Paths are relative to the folder of herald.toml.
/// The key and chain come either from `key` + `certificate` (PEM) or from one
/// `pkcs12` file, whose password is read from the environment variable named by
/// `password_env` (never from herald.toml, which is usually in version control).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    /// The private key, PEM (PKCS#8, SEC1 or PKCS#1): ECDSA P-256 or RSA.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The signer's certificate, PEM, followed by its chain up to (not necessarily
    /// including) the root.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// A PKCS#12 (`.p12`, `.pfx`) file holding the key and its chain, instead of
    /// `key` and `certificate`.
    #[serde(default)]
    pub pkcs12: Option<PathBuf>,
    /// The environment variable holding the PKCS#12 password
    /// (default [`DEFAULT_PASSWORD_ENV`]).
    #[serde(default)]
    pub password_env: Option<String>,
    /// An RFC 3161 time-stamping authority: signatures become PAdES B-T.
    #[serde(default)]
    pub timestamp_url: Option<String>,
    /// `/Reason` of the signature.
    #[serde(default)]
    pub reason: Option<String>,
    /// `/Location` of the signature.
    #[serde(default)]
    pub location: Option<String>,
}

/// Where the PKCS#12 password is read from when `password_env` is not set.
pub const DEFAULT_PASSWORD_ENV: &str = "HERALD_PKCS12_PASSWORD";

/// Where a signing key and chain come from, checked for exactly one source.
enum Source {
    Pem { key: PathBuf, certificate: PathBuf },
    Pkcs12 { file: PathBuf, password_env: String },
}

impl SigningSettings {
    fn source(&self, base: &Path) -> Result<Source, PdfError> {
        let usage = |m: &str| PdfError::Signing(m.to_string());
        match (&self.key, &self.certificate, &self.pkcs12) {
            (Some(key), Some(certificate), None) => {
                if self.password_env.is_some() {
                    return Err(usage(
                        "password_env is for a pkcs12 file: remove it, PEM keys have no password",
                    ));
                }
                Ok(Source::Pem {
                    key: base.join(key),
                    certificate: base.join(certificate),
                })
            }
            (None, None, Some(file)) => Ok(Source::Pkcs12 {
                file: base.join(file),
                password_env: self
                    .password_env
                    .clone()
                    .unwrap_or_else(|| DEFAULT_PASSWORD_ENV.to_string()),
            }),
            (_, _, Some(_)) => Err(usage(
                "give either pkcs12 or key and certificate, not both: remove one",
            )),
            (Some(_), None, None) => Err(usage(
                "key is set but certificate is not: add certificate = \"PEM file with the signer's certificate and chain\"",
            )),
            (None, Some(_), None) => Err(usage(
                "certificate is set but key is not: add key = \"PEM private key\", or use pkcs12 = \"FILE.p12\"",
            )),
            (None, None, None) => Err(usage(
                "needs key and certificate (PEM files) or pkcs12 (a .p12 file whose password is in an environment variable)",
            )),
        }
    }
}

enum Key {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

/// A loaded key and chain, ready to sign many files.
pub struct Signer {
    key: Key,
    certs: Vec<Certificate>,
    /// DER of the signing-certificate-v2 attribute (the same for every file).
    ess: Attribute,
    subject: String,
    timestamp_url: Option<String>,
    reason: Option<String>,
    location: Option<String>,
    /// Bytes reserved for the CMS: the hex string is twice as long.
    reserve: usize,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("subject", &self.subject)
            .field("timestamp_url", &self.timestamp_url)
            .finish_non_exhaustive()
    }
}

fn err(path: &Path, what: impl std::fmt::Display) -> PdfError {
    PdfError::Signing(format!("{}: {what}", path.display()))
}

/// Read every certificate of a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<Certificate>, PdfError> {
    let pem = std::fs::read(path).map_err(|e| err(path, e))?;
    let certs = Certificate::load_pem_chain(&pem).map_err(|e| {
        err(
            path,
            format!("not a PEM certificate chain ({e}): give the signer's certificate first, then its chain"),
        )
    })?;
    if certs.is_empty() {
        return Err(err(path, "holds no certificate"));
    }
    Ok(certs)
}

/// The name a reader knows the signer by: the certificate's common name (or its
/// whole subject when it has none), of the certificate `[pdf.signing]` names.
pub fn signer_name(base: &Path, s: &SigningSettings) -> Result<String, PdfError> {
    Ok(common_name(&configured_certificates(base, s)?[0]))
}

/// The common name of a certificate's subject, or the whole subject.
pub fn common_name(cert: &Certificate) -> String {
    let subject = &cert.tbs_certificate.subject;
    let cn = subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == ID_COMMON_NAME)
        .find_map(|atv| {
            atv.value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_string())
                })
                .ok()
        });
    cn.unwrap_or_else(|| subject.to_string())
}

fn load_key(path: &Path) -> Result<Key, PdfError> {
    use p256::pkcs8::DecodePrivateKey;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let pem = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
    if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
        let k = p256::SecretKey::from_sec1_pem(&pem)
            .map_err(|e| err(path, format!("not a P-256 SEC1 key: {e}")))?;
        return Ok(Key::P256(k.into()));
    }
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        let k = rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
            .map_err(|e| err(path, format!("not a PKCS#1 RSA key: {e}")))?;
        return Ok(Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))));
    }
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(err(
            path,
            "the key is encrypted: decrypt it (openssl pkey -in KEY -out KEY.pem) and keep the file readable only by herald",
        ));
    }
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem) {
        return Ok(Key::P256(k));
    }
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
        return Ok(Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))));
    }
    Err(err(
        path,
        "not a PEM ECDSA P-256 or RSA private key (PKCS#8, SEC1 or PKCS#1)",
    ))
}

/// A PKCS#8 private key in DER, as a PKCS#12 file holds it.
fn key_from_pkcs8_der(der: &[u8], path: &Path) -> Result<Key, PdfError> {
    use p256::pkcs8::DecodePrivateKey;
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
        return Ok(Key::P256(k));
    }
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
        return Ok(Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))));
    }
    Err(err(
        path,
        "its private key is neither ECDSA P-256 nor RSA: export a P-256 or RSA key",
    ))
}

/// The key and chain of a PKCS#12 file. `password` looks an environment variable
/// up (injected so tests need not change the process environment).
fn load_pkcs12(
    file: &Path,
    password_env: &str,
    password: &dyn Fn(&str) -> Option<String>,
) -> Result<(Key, Vec<Certificate>), PdfError> {
    let Some(pass) = password(password_env) else {
        return Err(err(
            file,
            format!(
                "set the environment variable {password_env} to this file's password \
                 (herald never reads a password from herald.toml)"
            ),
        ));
    };
    let bytes = std::fs::read(file).map_err(|e| err(file, e))?;
    let store = p12_keystore::KeyStore::from_pkcs12(&bytes, &pass).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => err(
            file,
            format!("the password in {password_env} does not open this file"),
        ),
        e => err(file, format!("not a readable PKCS#12 file ({e})")),
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(err(
            file,
            "holds no private key with its certificate: export the key together with its chain (openssl pkcs12 -export -inkey KEY -in CHAIN.pem)",
        ));
    };
    let key = key_from_pkcs8_der(chain.key(), file)?;
    let certs = chain
        .chain()
        .iter()
        .map(|c| Certificate::from_der(c.as_der()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(file, format!("a certificate in it is not valid DER ({e})")))?;
    if certs.is_empty() {
        return Err(err(file, "holds no certificate for its key"));
    }
    Ok((key, certs))
}

/// The key and chain `[pdf.signing]` names; `base` is the folder of herald.toml.
fn credentials(
    base: &Path,
    s: &SigningSettings,
    password: &dyn Fn(&str) -> Option<String>,
) -> Result<(Key, Vec<Certificate>, PathBuf, PathBuf), PdfError> {
    match s.source(base)? {
        Source::Pem { key, certificate } => {
            let k = load_key(&key)?;
            let certs = load_certificates(&certificate)?;
            Ok((k, certs, key, certificate))
        }
        Source::Pkcs12 { file, password_env } => {
            let (k, certs) = load_pkcs12(&file, &password_env, password)?;
            Ok((k, certs, file.clone(), file))
        }
    }
}

/// The signer's certificate and chain `[pdf.signing]` names (what `herald verify`
/// checks a PDF against). A PKCS#12 file needs its password from the environment.
pub fn configured_certificates(
    base: &Path,
    s: &SigningSettings,
) -> Result<Vec<Certificate>, PdfError> {
    match s.source(base)? {
        Source::Pem { certificate, .. } => load_certificates(&certificate),
        Source::Pkcs12 { file, password_env } => {
            load_pkcs12(&file, &password_env, &env_password).map(|(_, c)| c)
        }
    }
}

fn env_password(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether `cert` is one of `trusted`, or chains to one through certificates of
/// `pool` (those the signature carries) and `trusted`, each link's signature checked.
/// Validity periods are not checked here: that needs a clock, and a signature keeps
/// its meaning after its certificate expires (a time stamp proves when it was made).
fn chains_to(cert: &Certificate, pool: &[&Certificate], trusted: &[Certificate]) -> bool {
    let is_trusted = |c: &Certificate| {
        let der = c.to_der().ok();
        trusted.iter().any(|t| t.to_der().ok() == der)
    };
    let issued_by = |child: &Certificate, parent: &Certificate| {
        parent.tbs_certificate.subject == child.tbs_certificate.issuer
            && child.tbs_certificate.to_der().is_ok_and(|tbs| {
                child.signature.as_bytes().is_some_and(|sig| {
                    verify_raw(
                        &parent.tbs_certificate.subject_public_key_info,
                        &child.signature_algorithm.oid,
                        &tbs,
                        sig,
                    )
                    .is_ok()
                })
            })
    };
    let mut current = cert.clone();
    // Bounded: a loop of certificates issuing each other ends here.
    for _ in 0..8 {
        if is_trusted(&current) {
            return true;
        }
        if trusted.iter().any(|t| issued_by(&current, t)) {
            return true;
        }
        match pool.iter().find(|p| {
            p.tbs_certificate.subject != current.tbs_certificate.subject && issued_by(&current, p)
        }) {
            Some(parent) => current = (*parent).clone(),
            None => return false,
        }
    }
    false
}

/// ESSCertIDv2 with the default hash algorithm (SHA-256), so it is omitted.
#[derive(Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

#[derive(Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

#[derive(Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, der::Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn der_err(e: der::Error) -> PdfError {
    PdfError::Signing(format!("encoding the signature: {e}"))
}

impl Signer {
    /// Load `[pdf.signing]`; `base` is the folder of herald.toml.
    pub fn load(base: &Path, s: &SigningSettings) -> Result<Signer, PdfError> {
        Signer::load_with(base, s, &env_password)
    }

    /// [`Signer::load`], with the environment lookup for a PKCS#12 password given.
    pub fn load_with(
        base: &Path,
        s: &SigningSettings,
        password: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Signer, PdfError> {
        let (key, certs, key_path, cert_path) = credentials(base, s, password)?;
        if let Some(url) = &s.timestamp_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(PdfError::Signing(format!(
                "timestamp_url = {url:?}: give the http:// or https:// address of an RFC 3161 time-stamping authority"
            )));
        }
        let signer_cert = &certs[0];
        let cert_der = signer_cert.to_der().map_err(der_err)?;
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(Sha256::digest(&cert_der).to_vec()).map_err(der_err)?,
                issuer_serial: IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(
                        signer_cert.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: signer_cert.tbs_certificate.serial_number.clone(),
                },
            }],
        };
        let ess = attribute(ID_SIGNING_CERT_V2, Any::encode_from(&ess).map_err(der_err)?)
            .map_err(der_err)?;
        let chain: usize = certs
            .iter()
            .map(|c| c.to_der().map(|d| d.len()).unwrap_or(0))
            .sum();
        let signer = Signer {
            key,
            subject: signer_cert.tbs_certificate.subject.to_string(),
            certs,
            ess,
            timestamp_url: s.timestamp_url.clone(),
            reason: s.reason.clone(),
            location: s.location.clone(),
            // Room for the signer info and RSA-4096; a time-stamp token carries
            // the authority's own chain.
            reserve: chain + 2048 + if s.timestamp_url.is_some() { 12288 } else { 0 },
        };
        // The key must belong to the certificate: a mismatch would sign files no
        // one can verify.
        let probe = b"herald key check";
        let sig = signer.raw_sign(probe)?;
        verify_raw(
            &signer.certs[0].tbs_certificate.subject_public_key_info,
            &signer.signature_algorithm().oid,
            probe,
            &sig,
        )
        .map_err(|_| {
            err(
                &key_path,
                format!(
                    "this key does not belong to the first certificate in {}",
                    cert_path.display()
                ),
            )
        })?;
        Ok(signer)
    }

    /// The subject of the signer's certificate (RFC 4514).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The signer's certificate and its chain.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match self.key {
            Key::P256(_) => AlgorithmIdentifierOwned {
                oid: ID_ECDSA_SHA256,
                parameters: None,
            },
            Key::Rsa(_) => AlgorithmIdentifierOwned {
                oid: ID_RSA_SHA256,
                parameters: Some(Any::null()),
            },
        }
    }

    fn raw_sign(&self, msg: &[u8]) -> Result<Vec<u8>, PdfError> {
        use p256::ecdsa::signature::{SignatureEncoding, Signer as _};
        Ok(match &self.key {
            Key::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
            Key::Rsa(k) => k.sign(msg).to_vec(),
        })
    }

    /// Add the signature field and the `/Sig` dictionary with placeholders to
    /// `doc`, before it is saved. `time` is the claimed signing time (`/M`).
    pub(crate) fn prepare(
        &self,
        doc: &mut Document,
        catalog: ObjectId,
        first_page: ObjectId,
        time: Object,
    ) -> Result<(), PdfError> {
        let mut sig = dictionary! {
            "Type" => "Sig",
            "Filter" => "Adobe.PPKLite",
            "SubFilter" => "ETSI.CAdES.detached",
            "ByteRange" => vec![Object::Integer(PLACEHOLDER); 4],
            "Contents" => Object::String(vec![0; self.reserve], StringFormat::Hexadecimal),
            "M" => time,
        };
        if let Some(r) = &self.reason {
            sig.set("Reason", crate::write::text_string(r));
        }
        if let Some(l) = &self.location {
            sig.set("Location", crate::write::text_string(l));
        }
        let sig_id = doc.add_object(sig);
        // Invisible (zero rectangle), printable and locked: what PDF/A asks of a
        // signature widget.
        let widget = doc.add_object(dictionary! {
            "Type" => "Annot",
            "Subtype" => "Widget",
            "FT" => "Sig",
            "T" => Object::string_literal("Signature1"),
            "V" => sig_id,
            "P" => first_page,
            "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
            "F" => 132,
        });
        match doc.get_object_mut(first_page) {
            Ok(Object::Dictionary(page)) => match page.get_mut(b"Annots") {
                Ok(Object::Array(a)) => a.push(widget.into()),
                _ => page.set("Annots", vec![Object::Reference(widget)]),
            },
            _ => return Err(PdfError::Internal("first page is not a dictionary".into())),
        }
        match doc.get_object_mut(catalog) {
            Ok(Object::Dictionary(c)) => c.set(
                "AcroForm",
                Dictionary::from_iter([
                    ("Fields", Object::Array(vec![widget.into()])),
                    ("SigFlags", Object::Integer(3)),
                ]),
            ),
            _ => return Err(PdfError::Internal("catalog is not a dictionary".into())),
        }
        Ok(())
    }

    /// Fill in `/ByteRange` and `/Contents` of a file [`Signer::prepare`] marked.
    pub(crate) fn finish(&self, pdf: &mut [u8]) -> Result<(), PdfError> {
        let placeholder = format!("[{PLACEHOLDER} {PLACEHOLDER} {PLACEHOLDER} {PLACEHOLDER}]");
        let range_at = find(pdf, placeholder.as_bytes())
            .ok_or_else(|| PdfError::Internal("no /ByteRange placeholder".into()))?;
        let mut hole = vec![b'0'; 2 * self.reserve + 2];
        hole[0] = b'<';
        *hole.last_mut().expect("not empty") = b'>';
        let start = find(&pdf[range_at..], &hole)
            .map(|i| i + range_at)
            .ok_or_else(|| PdfError::Internal("no /Contents placeholder".into()))?;
        let end = start + hole.len();
        let ranges = format!("[0 {start} {end} {}]", pdf.len() - end);
        let mut field = ranges.into_bytes();
        field.resize(placeholder.len(), b' ');
        pdf[range_at..range_at + field.len()].copy_from_slice(&field);

        let mut h = Sha256::new();
        h.update(&pdf[..start]);
        h.update(&pdf[end..]);
        let cms = self.cms(&h.finalize())?;
        if cms.len() > self.reserve {
            return Err(PdfError::Signing(format!(
                "the signature needs {} bytes, {} were reserved: report this",
                cms.len(),
                self.reserve
            )));
        }
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for (i, b) in cms.iter().enumerate() {
            pdf[start + 1 + 2 * i] = HEX[usize::from(b >> 4)];
            pdf[start + 2 + 2 * i] = HEX[usize::from(b & 15)];
        }
        Ok(())
    }

    /// The detached CMS SignedData over a document digest.
    fn cms(&self, digest: &[u8]) -> Result<Vec<u8>, PdfError> {
        let signed_attrs = SetOfVec::try_from(vec![
            attribute(
                ID_CONTENT_TYPE,
                Any::encode_from(&ID_DATA).map_err(der_err)?,
            )
            .map_err(der_err)?,
            attribute(
                ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(digest.to_vec()).map_err(der_err)?)
                    .map_err(der_err)?,
            )
            .map_err(der_err)?,
            self.ess.clone(),
        ])
        .map_err(der_err)?;
        // The signature covers the attributes' DER as a SET (tag 0x31).
        let signature = self.raw_sign(&signed_attrs.to_der().map_err(der_err)?)?;
        let unsigned_attrs = match &self.timestamp_url {
            Some(url) => {
                let token = timestamp(url, &Sha256::digest(&signature))?;
                Some(
                    SetOfVec::try_from(vec![
                        attribute(ID_TIMESTAMP_TOKEN, token).map_err(der_err)?,
                    ])
                    .map_err(der_err)?,
                )
            }
            None => None,
        };
        let signer = &self.certs[0];
        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        };
        let info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: signer.tbs_certificate.issuer.clone(),
                serial_number: signer.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: self.signature_algorithm(),
            signature: OctetString::new(signature).map_err(der_err)?,
            unsigned_attrs,
        };
        let data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(der_err)?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet(
                SetOfVec::try_from(
                    self.certs
                        .iter()
                        .cloned()
                        .map(CertificateChoices::Certificate)
                        .collect::<Vec<_>>(),
                )
                .map_err(der_err)?,
            )),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![info]).map_err(der_err)?),
        };
        ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&data).map_err(der_err)?,
        }
        .to_der()
        .map_err(der_err)
    }
}

/// Ten digits: wide enough for any offset, so the real numbers fit in its place.
const PLACEHOLDER: i64 = 9_999_999_999;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

#[derive(Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    cert_req: bool,
}

#[derive(Sequence)]
struct PkiStatusInfo {
    status: u32,
    status_string: Option<Any>,
    fail_info: Option<Any>,
}

#[derive(Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    time_stamp_token: Option<Any>,
}

/// Ask an RFC 3161 authority to time-stamp `imprint` (SHA-256 of the signature
/// value); the token (a ContentInfo) goes in as an unsigned attribute.
fn timestamp(url: &str, imprint: &[u8]) -> Result<Any, PdfError> {
    let fail = |what: String| PdfError::Signing(format!("time stamp from {url}: {what}"));
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA256,
                parameters: None,
            },
            hashed_message: OctetString::new(imprint.to_vec()).map_err(der_err)?,
        },
        cert_req: true,
    }
    .to_der()
    .map_err(der_err)?;
    let mut resp = ureq::post(url)
        .content_type("application/timestamp-query")
        .send(&req[..])
        .map_err(|e| fail(e.to_string()))?;
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| fail(e.to_string()))?;
    let resp =
        TimeStampResp::from_der(&body).map_err(|e| fail(format!("not a TimeStampResp: {e}")))?;
    // 0 granted, 1 granted with modifications.
    if resp.status.status > 1 {
        return Err(fail(format!("refused (PKIStatus {})", resp.status.status)));
    }
    let token = resp
        .time_stamp_token
        .ok_or_else(|| fail("granted without a token".into()))?;
    // The token must be a time-stamp over what was asked.
    let ci: ContentInfo = token.decode_as().map_err(|e| fail(e.to_string()))?;
    let sd: SignedData = ci.content.decode_as().map_err(|e| fail(e.to_string()))?;
    let info = sd
        .encap_content_info
        .econtent
        .ok_or_else(|| fail("token without TSTInfo".into()))?;
    let tst =
        OctetString::from_der(&info.to_der().map_err(der_err)?).map_err(|e| fail(e.to_string()))?;
    if find(tst.as_bytes(), imprint).is_none() {
        return Err(fail("the token does not cover this signature".into()));
    }
    Ok(token)
}

/// Check `sig` over `msg` with a certificate's public key.
fn verify_raw(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &ObjectIdentifier,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    let key = spki.subject_public_key.raw_bytes();
    match (spki.algorithm.oid, *alg) {
        (ID_EC_PUBLIC_KEY, ID_ECDSA_SHA256) => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|e| format!("not a P-256 public key: {e}"))?;
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(|e| e.to_string())?;
            vk.verify(msg, &sig)
                .map_err(|_| "signature mismatch".into())
        }
        (ID_RSA, ID_RSA_SHA256 | ID_RSA) => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let pk = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|e| e.to_string())?;
            let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk);
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
            vk.verify(msg, &sig)
                .map_err(|_| "signature mismatch".into())
        }
        (k, a) => Err(format!("unsupported key {k} with algorithm {a}")),
    }
}

/// What [`verify`] found in a valid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Subject of the signing certificate.
    pub subject: String,
    /// A time-stamp token is attached (PAdES B-T).
    pub timestamped: bool,
}

/// Why a file does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the file has no signature (no /ByteRange)")]
    Unsigned,
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error(
        "the signature does not cover the whole file: /ByteRange {0:?} leaves out more than /Contents (changes were appended or the range is forged)"
    )]
    Coverage([usize; 4]),
    #[error("the file was changed after signing: its digest does not match the signed one")]
    Digest,
    #[error("the signature value does not verify: {0}")]
    Signature(String),
    #[error("signed by {subject}, which is neither a configured certificate nor issued by one")]
    Untrusted { subject: String },
}

fn malformed(what: impl std::fmt::Display) -> VerifyError {
    VerifyError::Malformed(what.to_string())
}

fn parse_range(pdf: &[u8]) -> Result<[usize; 4], VerifyError> {
    let at = pdf
        .windows(10)
        .rposition(|w| w == b"/ByteRange")
        .ok_or(VerifyError::Unsigned)?;
    let rest = &pdf[at + 10..];
    let open = rest
        .iter()
        .position(|&b| b == b'[')
        .ok_or_else(|| malformed("/ByteRange is not an array"))?;
    let close = rest
        .iter()
        .position(|&b| b == b']')
        .ok_or_else(|| malformed("/ByteRange is not closed"))?;
    let text = std::str::from_utf8(&rest[open + 1..close.max(open + 1)])
        .map_err(|_| malformed("/ByteRange is not text"))?;
    let nums: Vec<usize> = text
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| malformed("/ByteRange holds a non-number"))?;
    <[usize; 4]>::try_from(nums).map_err(|_| malformed("/ByteRange needs four numbers"))
}

/// Verify the (last) signature of a PDF against `trusted` certificates: the signer
/// must be one of them or be issued (and signed) by one of them.
pub fn verify(pdf: &[u8], trusted: &[Certificate]) -> Result<Verified, VerifyError> {
    let r = parse_range(pdf)?;
    let [a, b, c, d] = r;
    // One hole, exactly the hex string, and nothing after the second range.
    if a != 0
        || b >= c
        || c.checked_add(d) != Some(pdf.len())
        || pdf[b] != b'<'
        || pdf[c - 1] != b'>'
        || !pdf[b + 1..c - 1].iter().all(u8::is_ascii_hexdigit)
    {
        return Err(VerifyError::Coverage(r));
    }
    let hex = &pdf[b + 1..c - 1];
    let mut cms = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks(2) {
        let s = std::str::from_utf8(pair).map_err(malformed)?;
        cms.push(u8::from_str_radix(s, 16).map_err(malformed)?);
    }
    // Trailing zeros pad the reserved space: read one DER value, ignore the rest.
    let mut reader = der::SliceReader::new(&cms).map_err(malformed)?;
    let ci = ContentInfo::decode(&mut reader).map_err(malformed)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(malformed("/Contents is not a SignedData"));
    }
    let sd: SignedData = ci.content.decode_as().map_err(malformed)?;
    let info = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| malformed("no signer"))?;
    let certs: Vec<&Certificate> = sd
        .certificates
        .as_ref()
        .map(|s| {
            s.0.iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &info.sid else {
        return Err(malformed("signer identified by key id: not supported"));
    };
    let signer = certs
        .iter()
        .find(|c| {
            c.tbs_certificate.issuer == sid.issuer
                && c.tbs_certificate.serial_number == sid.serial_number
        })
        .ok_or_else(|| malformed("the signer's certificate is not in the signature"))?;
    if info.digest_alg.oid != ID_SHA256 {
        return Err(malformed(format!(
            "digest {} is not SHA-256",
            info.digest_alg.oid
        )));
    }
    let attrs = info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("no signed attributes"))?;
    let signed_digest = attrs
        .iter()
        .find(|a| a.oid == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| malformed("no message-digest attribute"))?;
    let mut h = Sha256::new();
    h.update(&pdf[..b]);
    h.update(&pdf[c..]);
    if h.finalize().as_slice() != signed_digest.as_bytes() {
        return Err(VerifyError::Digest);
    }
    verify_raw(
        &signer.tbs_certificate.subject_public_key_info,
        &info.signature_algorithm.oid,
        &attrs.to_der().map_err(malformed)?,
        info.signature.as_bytes(),
    )
    .map_err(VerifyError::Signature)?;
    let subject = signer.tbs_certificate.subject.to_string();
    let trusted_ok = chains_to(signer, &certs, trusted);
    if !trusted_ok {
        return Err(VerifyError::Untrusted { subject });
    }
    Ok(Verified {
        subject,
        timestamped: info
            .unsigned_attrs
            .as_ref()
            .is_some_and(|u| u.iter().any(|a| a.oid == ID_TIMESTAMP_TOKEN)),
    })
}
