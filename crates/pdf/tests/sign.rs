//! Signed PDFs checked by independent verifiers: poppler's `pdfsig` (NSS database
//! made with `certutil`), pyHanko (in the test venv), qpdf, and herald's own
//! `sign::verify`. Keys and certificates are made with the `openssl` command; the
//! time-stamping authority is `openssl ts -reply` behind a small HTTP wrapper.

mod support;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use support::qpdf_check;

use herald_content::Corpus;
use herald_pdf::{PdfSettings, Renderer, sign};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} not installed (cargo xtask test provisions it): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test CA, an ECDSA P-256 signer, an RSA signer and a time-stamping unit.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(
            d.join("ext.cnf"),
            "[signer]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n\
             [tsa]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
        )
        .expect("ext");
        run(
            d,
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=Herald Test CA/O=Herald Tests",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        for (name, key, section, cn) in [
            ("signer", "ec", "signer", "Press Office"),
            ("rsa", "rsa", "signer", "Press Office RSA"),
            ("tsa", "ec", "tsa", "Herald Test TSA"),
        ] {
            let mut args = vec!["req", "-new", "-newkey", key, "-nodes"];
            if key == "ec" {
                args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
            } else {
                args.extend(["-pkeyopt", "rsa_keygen_bits:2048"]);
            }
            let keyout = format!("{name}.key");
            let csr = format!("{name}.csr");
            let subj = format!("/CN={cn}/O=Test Agency");
            args.extend(["-keyout", &keyout, "-out", &csr, "-subj", &subj]);
            run(d, "openssl", &args);
            let cert = format!("{name}.pem");
            run(
                d,
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-days",
                    "3650",
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    section,
                ],
            );
            let chain = format!(
                "{}{}",
                std::fs::read_to_string(d.join(&cert)).expect("cert"),
                std::fs::read_to_string(d.join("ca.pem")).expect("ca")
            );
            std::fs::write(d.join(format!("{name}-chain.pem")), chain).expect("chain");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The sample content, with `[pdf.signing]` added.
fn signed_corpus(pki: &Pki, key: &str, extra: &str) -> (tempfile::TempDir, Corpus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = workspace().join("content");
    let to = dir.path().join("content");
    for entry in walk(&from) {
        let rel = entry.strip_prefix(&from).expect("inside");
        let target = to.join(rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &target).expect("copy");
    }
    let mut toml = std::fs::read_to_string(to.join("herald.toml")).expect("config");
    toml.push_str(&format!(
        "\n[pdf.signing]\nkey = {:?}\ncertificate = {:?}\nreason = \"Official statement\"\nlocation = \"Astana\"\n{extra}",
        pki.path(&format!("{key}.key")),
        pki.path(&format!("{key}-chain.pem")),
    ));
    std::fs::write(to.join("herald.toml"), toml).expect("config");
    let corpus = herald_content::load(dir.path()).expect("corpus loads");
    (dir, corpus)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn render_first(corpus: &Corpus) -> Vec<u8> {
    let settings = PdfSettings::from_config(&corpus.config).expect("settings");
    let renderer = Renderer::new(&corpus.config, &settings).expect("renderer");
    let s = corpus
        .statements
        .iter()
        .find(|s| s.id == "2014/world-day-against-trafficking" && s.lang == "en")
        .expect("sample statement");
    renderer.render(&corpus.config, s).expect("render")
}

/// pdfsig with the test CA trusted in a fresh NSS database.
fn pdfsig(pki: &Pki, pdf: &[u8]) -> (bool, String) {
    let nss = tempfile::tempdir().expect("tempdir");
    let db = format!("sql:{}", nss.path().display());
    run(
        nss.path(),
        "certutil",
        &["-N", "-d", &db, "--empty-password"],
    );
    let ca = pki.path("ca.pem");
    run(
        nss.path(),
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "herald-test-ca",
            "-t",
            "CT,C,C",
            "-a",
            "-i",
            ca.to_str().expect("utf-8"),
        ],
    );
    let file = nss.path().join("s.pdf");
    std::fs::write(&file, pdf).expect("write");
    let out = Command::new("pdfsig")
        .args(["-nssdir", &db])
        .arg(&file)
        .output()
        .expect("pdfsig (poppler-utils)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn venv_python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("test-venv/bin/python")
}

/// pyHanko's report as key -> value.
fn pyhanko(pki: &Pki, pdf: &[u8]) -> std::collections::HashMap<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s.pdf");
    std::fs::write(&file, pdf).expect("write");
    let out = Command::new(venv_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sign/pyhanko_validate.py"))
        .arg(&file)
        .arg(pki.path("ca.pem"))
        .output()
        .expect("the test venv's python (cargo xtask test makes it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pyHanko failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flip_in_signed_range(pdf: &[u8]) -> Vec<u8> {
    let mut bad = pdf.to_vec();
    // A byte in the middle of the page content, well before /Contents.
    let at = bad.len() / 4;
    bad[at] ^= 0x01;
    bad
}

#[test]
fn ecdsa_signature_is_valid_for_pdfsig_pyhanko_and_herald() {
    let pki = Pki::new();
    let (_dir, corpus) = signed_corpus(&pki, "signer", "");
    let pdf = render_first(&corpus);
    let ca = sign::load_certificates(&pki.path("ca.pem")).expect("ca");

    let v = sign::verify(&pdf, &ca).expect("herald verifies");
    assert!(v.subject.contains("CN=Press Office"), "{v:?}");
    assert!(!v.timestamped);

    let (ok, text) = pdfsig(&pki, &pdf);
    assert!(ok, "{text}");
    assert!(
        text.contains("Signature Validation: Signature is Valid."),
        "{text}"
    );
    assert!(
        text.contains("Certificate Validation: Certificate is Trusted."),
        "{text}"
    );
    assert!(text.contains("Total document signed"), "{text}");
    assert!(text.contains("ETSI.CAdES.detached"), "{text}");

    let py = pyhanko(&pki, &pdf);
    assert_eq!(py["INTACT"], "True", "{py:?}");
    assert_eq!(py["VALID"], "True", "{py:?}");
    assert_eq!(py["TRUSTED"], "True", "{py:?}");
    assert_eq!(py["COVERAGE"], "ENTIRE_FILE", "{py:?}");
    assert_eq!(py["BOTTOM_LINE"], "True", "{py:?}");
    assert_eq!(py["SUBFILTER"], "/ETSI.CAdES.detached", "{py:?}");
    assert_eq!(py["ADES_BASIC"], "AdESPassed.OK", "{py:?}");
    assert_eq!(py["HAS_TST"], "False", "{py:?}");

    // Still PDF/A-2b and tagged.
    qpdf_check(&pdf, "signed");
    let text = String::from_utf8_lossy(&pdf);
    assert!(
        text.contains("pdfaid:part") || text.contains("<pdfaid:part>"),
        "XMP pdfaid"
    );
    assert!(text.contains("/StructTreeRoot"));
    assert!(text.contains("/SigFlags 3"));
}

#[test]
fn one_flipped_byte_fails_everywhere() {
    let pki = Pki::new();
    let (_dir, corpus) = signed_corpus(&pki, "signer", "");
    let bad = flip_in_signed_range(&render_first(&corpus));
    let ca = sign::load_certificates(&pki.path("ca.pem")).expect("ca");
    let e = sign::verify(&bad, &ca).expect_err("herald notices");
    assert!(matches!(e, sign::VerifyError::Digest), "{e}");

    let (_, text) = pdfsig(&pki, &bad);
    assert!(!text.contains("Signature is Valid."), "{text}");
    assert!(text.contains("Digest Mismatch"), "{text}");

    let py = pyhanko(&pki, &bad);
    assert_eq!(py["INTACT"], "False", "{py:?}");
    assert_eq!(py["BOTTOM_LINE"], "False", "{py:?}");
    assert_eq!(py["ADES_BASIC"], "AdESFailure.HASH_FAILURE", "{py:?}");
}

#[test]
fn appended_bytes_and_a_foreign_certificate_are_reported() {
    let pki = Pki::new();
    let (_dir, corpus) = signed_corpus(&pki, "signer", "");
    let pdf = render_first(&corpus);
    let mut longer = pdf.clone();
    longer.extend_from_slice(b"\n% appended\n");
    let ca = sign::load_certificates(&pki.path("ca.pem")).expect("ca");
    let e = sign::verify(&longer, &ca).expect_err("appended");
    assert!(matches!(e, sign::VerifyError::Coverage(_)), "{e}");
    // Trusting only the TSA's certificate: the signer is not trusted.
    let other = sign::load_certificates(&pki.path("tsa.pem")).expect("tsa");
    let e = sign::verify(&pdf, &other).expect_err("untrusted");
    assert!(matches!(e, sign::VerifyError::Untrusted { .. }), "{e}");
}

#[test]
fn same_input_same_signed_bytes() {
    let pki = Pki::new();
    let (_dir, corpus) = signed_corpus(&pki, "signer", "");
    let a = render_first(&corpus);
    let b = render_first(&corpus);
    assert!(a == b, "two signed renders differ");
}

#[test]
fn rsa_signature_is_valid() {
    let pki = Pki::new();
    let (_dir, corpus) = signed_corpus(&pki, "rsa", "");
    let pdf = render_first(&corpus);
    let ca = sign::load_certificates(&pki.path("ca.pem")).expect("ca");
    sign::verify(&pdf, &ca).expect("herald verifies");
    let (ok, text) = pdfsig(&pki, &pdf);
    assert!(ok && text.contains("Signature is Valid."), "{text}");
    let py = pyhanko(&pki, &pdf);
    assert_eq!(py["VALID"], "True", "{py:?}");
    assert_eq!(py["ADES_BASIC"], "AdESPassed.OK", "{py:?}");
    assert!(
        render_first(&corpus) == pdf,
        "RSA PKCS#1 v1.5 is deterministic"
    );
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let pki = Pki::new();
    let signing = sign::SigningSettings {
        key: Some(pki.path("rsa.key")),
        certificate: Some(pki.path("signer-chain.pem")),
        pkcs12: None,
        password_env: None,
        timestamp_url: None,
        reason: None,
        location: None,
    };
    let e = sign::Signer::load(Path::new("/"), &signing).expect_err("mismatch");
    assert!(e.to_string().contains("does not belong"), "{e}");
    assert!(e.to_string().contains("rsa.key"), "{e}");
}

/// `openssl ts -reply` behind a one-file Python HTTP server; killed on drop.
struct Tsa {
    child: Child,
    url: String,
}

impl Drop for Tsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tsa(pki: &Pki) -> Tsa {
    let d = pki.dir.path();
    std::fs::write(d.join("tsaserial"), "01\n").expect("serial");
    std::fs::write(
        d.join("ts.cnf"),
        format!(
            "[tsa]\ndefault_tsa = tsa1\n[tsa1]\ndir = {}\nserial = $dir/tsaserial\ncrypto_device = builtin\n\
             signer_cert = $dir/tsa.pem\ncerts = $dir/ca.pem\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\n\
             default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\nordering = yes\ntsa_name = no\n\
             ess_cert_id_chain = no\ness_cert_id_alg = sha256\n",
            d.display()
        ),
    )
    .expect("ts.cnf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sign/tsa_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(d.join("ts.cnf"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let port: u16 = line.trim().parse().expect("the wrapper prints its port");
    Tsa {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    }
}

#[test]
fn with_a_time_stamping_authority_the_signature_is_b_t() {
    let pki = Pki::new();
    let tsa = start_tsa(&pki);
    let (_dir, corpus) = signed_corpus(&pki, "signer", &format!("timestamp_url = {:?}\n", tsa.url));
    let pdf = render_first(&corpus);
    let ca = sign::load_certificates(&pki.path("ca.pem")).expect("ca");
    let v = sign::verify(&pdf, &ca).expect("herald verifies");
    assert!(v.timestamped);
    let py = pyhanko(&pki, &pdf);
    assert_eq!(py["VALID"], "True", "{py:?}");
    assert_eq!(py["HAS_TST"], "True", "{py:?}");
    assert_eq!(py["TIMESTAMP"], "True", "{py:?}");
    assert_eq!(py["ADES_WITH_TIME"], "AdESPassed.OK", "{py:?}");
    let (ok, text) = pdfsig(&pki, &pdf);
    assert!(ok && text.contains("Signature is Valid."), "{text}");
    qpdf_check(&pdf, "signed");
    drop(tsa);
    // The authority is gone: signing fails with a clear error, nothing half-written.
    let settings = PdfSettings::from_config(&corpus.config).expect("settings");
    let e = Renderer::new(&corpus.config, &settings)
        .expect("renderer")
        .render(&corpus.config, &corpus.statements[0])
        .expect_err("no authority");
    assert!(
        e.to_string().contains("time stamp from http://127.0.0.1"),
        "{e}"
    );
}

/// `openssl pkcs12 -export` of a key and its chain; `legacy` uses OpenSSL 1.x's
/// RC2/3DES and SHA-1 MAC, as older exports from Windows and Java tools do.
fn export_p12(pki: &Pki, key: &str, legacy: bool) -> PathBuf {
    let out = format!("{key}{}.p12", if legacy { "-legacy" } else { "" });
    let keyfile = format!("{key}.key");
    let chain = format!("{key}-chain.pem");
    let mut args = vec![
        "pkcs12",
        "-export",
        "-inkey",
        &keyfile,
        "-in",
        &chain,
        "-out",
        &out,
        "-passout",
        "pass:correct horse",
    ];
    if legacy {
        args.push("-legacy");
    }
    run(pki.dir.path(), "openssl", &args);
    pki.path(&out)
}

fn p12_settings(file: PathBuf) -> sign::SigningSettings {
    sign::SigningSettings {
        key: None,
        certificate: None,
        pkcs12: Some(file),
        password_env: Some("TEST_P12_PASSWORD".into()),
        timestamp_url: None,
        reason: None,
        location: None,
    }
}

fn password(name: &str) -> Option<String> {
    (name == "TEST_P12_PASSWORD").then(|| "correct horse".to_string())
}

#[test]
fn a_pkcs12_file_gives_the_same_signer_as_its_pem_files() {
    let pki = Pki::new();
    for (key, legacy) in [
        ("signer", false),
        ("signer", true),
        ("rsa", false),
        ("rsa", true),
    ] {
        let file = export_p12(&pki, key, legacy);
        let from_p12 = sign::Signer::load_with(Path::new("/"), &p12_settings(file), &password)
            .unwrap_or_else(|e| panic!("{key} legacy={legacy}: {e}"));
        let pem = sign::SigningSettings {
            key: Some(pki.path(&format!("{key}.key"))),
            certificate: Some(pki.path(&format!("{key}-chain.pem"))),
            ..p12_settings(PathBuf::new())
        };
        let pem = sign::SigningSettings {
            pkcs12: None,
            password_env: None,
            ..pem
        };
        let from_pem = sign::Signer::load(Path::new("/"), &pem).expect("pem");
        assert_eq!(from_p12.subject(), from_pem.subject());
        assert_eq!(from_p12.certificates(), from_pem.certificates(), "{key}");
        assert_eq!(from_p12.certificates().len(), 2, "signer and CA");
    }
}

#[test]
fn pkcs12_errors_name_the_file_and_what_to_do() {
    let pki = Pki::new();
    let file = export_p12(&pki, "signer", false);
    let base = Path::new("/");
    let e = sign::Signer::load_with(base, &p12_settings(file.clone()), &|_| None)
        .expect_err("no password");
    let msg = e.to_string();
    assert!(msg.contains("signer.p12"), "{msg}");
    assert!(
        msg.contains("set the environment variable TEST_P12_PASSWORD"),
        "{msg}"
    );

    let e = sign::Signer::load_with(base, &p12_settings(file.clone()), &|_| Some("wrong".into()))
        .expect_err("wrong password");
    assert!(
        e.to_string()
            .contains("the password in TEST_P12_PASSWORD does not open this file"),
        "{e}"
    );

    std::fs::write(pki.path("junk.p12"), b"not a pfx").expect("write");
    let e = sign::Signer::load_with(base, &p12_settings(pki.path("junk.p12")), &password)
        .expect_err("junk");
    assert!(e.to_string().contains("not a readable PKCS#12 file"), "{e}");

    let both = sign::SigningSettings {
        key: Some(pki.path("signer.key")),
        certificate: Some(pki.path("signer-chain.pem")),
        ..p12_settings(file)
    };
    let e = sign::Signer::load_with(base, &both, &password).expect_err("both");
    assert!(
        e.to_string()
            .contains("either pkcs12 or key and certificate"),
        "{e}"
    );

    let neither = sign::SigningSettings {
        pkcs12: None,
        password_env: None,
        ..p12_settings(PathBuf::new())
    };
    let e = sign::Signer::load_with(base, &neither, &password).expect_err("neither");
    assert!(e.to_string().contains("needs key and certificate"), "{e}");

    // A password in herald.toml is refused by name.
    let mut toml = std::fs::read_to_string(workspace().join("content/herald.toml")).expect("toml");
    toml.push_str("\n[pdf.signing]\npkcs12 = \"org.p12\"\npassword = \"hunter2\"\n");
    let config = herald_content::Config::parse(Path::new("herald.toml"), &toml).expect("parses");
    let e = PdfSettings::from_config(&config).expect_err("a password key");
    assert!(e.to_string().contains("password"), "{e}");
}

#[test]
fn a_signer_under_an_intermediate_ca_chains_to_the_root() {
    let pki = Pki::new();
    let d = pki.dir.path();
    std::fs::write(
        d.join("ca-ext.cnf"),
        "[ica]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .expect("ext");
    run(
        d,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ica.key",
            "-out",
            "ica.csr",
            "-subj",
            "/CN=Herald Test Issuing CA/O=Herald Tests",
        ],
    );
    run(
        d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "ica.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "ica.pem",
            "-days",
            "3650",
            "-extfile",
            "ca-ext.cnf",
            "-extensions",
            "ica",
        ],
    );
    run(
        d,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "deep.key",
            "-out",
            "deep.csr",
            "-subj",
            "/CN=Press Office Deep/O=Test Agency",
        ],
    );
    run(
        d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "deep.csr",
            "-CA",
            "ica.pem",
            "-CAkey",
            "ica.key",
            "-CAcreateserial",
            "-out",
            "deep.pem",
            "-days",
            "3650",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "signer",
        ],
    );
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(d.join("deep.pem")).expect("leaf"),
        std::fs::read_to_string(d.join("ica.pem")).expect("ica")
    );
    std::fs::write(d.join("deep-chain.pem"), chain).expect("chain");

    let (_dir, corpus) = signed_corpus(&pki, "deep", "");
    let pdf = render_first(&corpus);
    // Trusting only the root: leaf -> issuing CA (carried in the signature) -> root.
    let root = sign::load_certificates(&pki.path("ca.pem")).expect("ca");
    let v = sign::verify(&pdf, &root).expect("chains to the root");
    assert!(v.subject.contains("CN=Press Office Deep"), "{v:?}");
    let (ok, text) = pdfsig(&pki, &pdf);
    assert!(ok && text.contains("Certificate is Trusted."), "{text}");
    // A root that issued nothing here: untrusted.
    let other = sign::load_certificates(&pki.path("tsa.pem")).expect("tsa");
    let e = sign::verify(&pdf, &other).expect_err("untrusted");
    assert!(matches!(e, sign::VerifyError::Untrusted { .. }), "{e}");
}
