//! Signing end to end: `herald keys init`, publish, then independent verifiers
//! (`pdfsig` with an NSS database from `certutil`, `minisign -V`) and `herald
//! verify`, which must name every file changed after publication.

use std::path::Path;
use std::process::{Command, Output};

use herald_e2e::{herald, sample_project};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const NOW: &str = "2026-12-01T00:00:00Z";
const PDF: &str =
    "public/en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf";

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} (cargo xtask test provisions it): {e}"))
}

fn signed_project() -> tempfile::TempDir {
    let dir = sample_project();
    let root = dir.path();
    let out = ok(&herald(BIN, root, &["keys", "init"]));
    assert!(out.contains("TEST-ONLY"), "{out}");
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    dir
}

#[test]
fn keys_init_publish_and_independent_verifiers() {
    let dir = signed_project();
    let root = dir.path();
    assert_eq!(
        std::fs::read_to_string(root.join("keys/.gitignore")).expect("gitignore"),
        "# Private keys: never commit them.\n*\n"
    );
    // A second init refuses to overwrite.
    let again = herald(BIN, root, &["keys", "init"]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already"), "{}", text(&again));

    // pdfsig trusts the test certificate from an NSS database.
    std::fs::create_dir(root.join("nss")).expect("mkdir");
    let o = tool(
        root,
        "certutil",
        &["-N", "-d", "sql:nss", "--empty-password"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tool(
        root,
        "certutil",
        &[
            "-A",
            "-d",
            "sql:nss",
            "-n",
            "herald-test",
            "-t",
            "CT,C,C",
            "-a",
            "-i",
            "keys/signing.pem",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let sig = ok(&tool(root, "pdfsig", &["-nssdir", "sql:nss", PDF]));
    assert!(sig.contains("Signature is Valid."), "{sig}");
    assert!(sig.contains("Certificate is Trusted."), "{sig}");
    assert!(sig.contains("Total document signed"), "{sig}");

    // minisign checks the manifest with the published public key.
    let m = ok(&tool(
        root,
        "minisign",
        &[
            "-V",
            "-p",
            "public/.well-known/herald/manifest.pub",
            "-m",
            "public/.well-known/herald/manifest.json",
        ],
    ));
    assert!(
        m.contains("Signature and comment signature verified"),
        "{m}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("public/.well-known/herald/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let pdf_entry = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| PDF.ends_with(f["path"].as_str().expect("path")))
        .expect("the PDF is listed");
    assert_eq!(pdf_entry["statement"], "2014/world-day-against-trafficking");
    assert_eq!(pdf_entry["lang"], "en");
    assert_eq!(pdf_entry["sha256"].as_str().expect("sha").len(), 64);

    let v = ok(&herald(BIN, root, &["verify"]));
    assert!(v.contains("ok: the manifest's signature is valid"), "{v}");
    let v = ok(&herald(
        BIN,
        root,
        &["verify", root.join(PDF).to_str().expect("utf-8")],
    ));
    assert!(v.contains("TEST ONLY"), "{v}");

    // The statement page says who signed the PDF and links the manifest.
    let page = std::fs::read_to_string(
        root.join("public/en/2014/world-day-against-trafficking/index.html"),
    )
    .expect("page");
    assert!(page.contains("herald keys init"), "{page}");
    assert!(page.contains(".well-known/herald/manifest.json"), "{page}");

    // A changed statement republishes; the new manifest verifies.
    std::fs::write(
        root.join("content/statements/2016/labour-migration-in-figures.en.md"),
        std::fs::read_to_string(
            root.join("content/statements/2016/labour-migration-in-figures.en.md"),
        )
        .expect("read")
            + "\n",
    )
    .expect("touch");
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    ok(&herald(BIN, root, &["verify"]));
}

#[test]
fn verify_names_every_changed_file_and_fails() {
    let dir = signed_project();
    let root = dir.path();
    // One byte flipped inside the PDF's signed range, and an edited page.
    let pdf = root.join(PDF);
    let mut bytes = std::fs::read(&pdf).expect("pdf");
    let at = bytes.len() / 4;
    bytes[at] ^= 1;
    std::fs::write(&pdf, &bytes).expect("write");
    let page = root.join("public/en/index.html");
    let mut html = std::fs::read_to_string(&page).expect("page");
    html.push_str("<p>forged</p>");
    std::fs::write(&page, html).expect("write");
    std::fs::write(root.join("public/extra.html"), "x").expect("write");

    let out = herald(BIN, root, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains(
            "changed: en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf"
        ),
        "{t}"
    );
    assert!(t.contains("changed: en/index.html"), "{t}");
    assert!(t.contains("not in the manifest: extra.html"), "{t}");
    assert!(t.contains("FAILED: 3 of"), "{t}");

    let out = herald(BIN, root, &["verify", pdf.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("changed after signing"),
        "{}",
        text(&out)
    );

    // A manifest edited to match is caught by its signature.
    let mpath = root.join("public/.well-known/herald/manifest.json");
    let m =
        std::fs::read_to_string(&mpath)
            .expect("manifest")
            .replacen("\"size\": ", "\"size\": 1", 1);
    std::fs::write(&mpath, m).expect("write");
    let out = herald(BIN, root, &["verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("signature does not verify"),
        "{}",
        text(&out)
    );
    let o = tool(
        root,
        "minisign",
        &[
            "-V",
            "-p",
            "public/.well-known/herald/manifest.pub",
            "-m",
            "public/.well-known/herald/manifest.json",
        ],
    );
    assert!(
        !o.status.success(),
        "minisign must refuse the edited manifest"
    );
}

#[test]
fn a_missing_key_fails_the_gate_and_publishes_nothing() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["keys", "init"]));
    std::fs::remove_file(root.join("keys/signing.key")).expect("rm");
    let out = herald(BIN, root, &["check"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("signing.key"), "{}", text(&out));
    let out = herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!root.join("public/en").exists(), "nothing published");
}

/// herald with `HERALD_PKCS12_PASSWORD` set (or removed) for the child only.
fn herald_env(root: &Path, password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(root).args(args);
    match password {
        Some(p) => cmd.env("HERALD_PKCS12_PASSWORD", p),
        None => cmd.env_remove("HERALD_PKCS12_PASSWORD"),
    };
    cmd.output().expect("run herald")
}

#[test]
fn a_pkcs12_file_signs_with_its_password_from_the_environment() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["keys", "init"]));
    let o = tool(
        root,
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "keys/signing.key",
            "-in",
            "keys/signing.pem",
            "-out",
            "keys/org.p12",
            "-passout",
            "pass:p12 test password",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Only the .p12 stays: the PEM key is gone, so nothing else could sign.
    std::fs::remove_file(root.join("keys/signing.key")).expect("rm");
    let toml_path = root.join("content/herald.toml");
    let toml = std::fs::read_to_string(&toml_path).expect("toml");
    let toml = toml.replace(
        "key = \"../keys/signing.key\"\ncertificate = \"../keys/signing.pem\"\n",
        "pkcs12 = \"../keys/org.p12\"\n",
    );
    assert!(toml.contains("pkcs12 = "), "{toml}");
    std::fs::write(&toml_path, toml).expect("write");

    // Without the password: the gate says which variable to set, nothing is published.
    let out = herald_env(root, None, &["publish", "--now", NOW, "--no-mail"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("HERALD_PKCS12_PASSWORD"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("org.p12"), "{}", text(&out));
    assert!(!root.join("public/en").exists(), "nothing published");
    let out = herald_env(root, Some("wrong"), &["check"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("does not open this file"),
        "{}",
        text(&out)
    );

    let pass = Some("p12 test password");
    ok(&herald_env(
        root,
        pass,
        &["publish", "--now", NOW, "--no-mail"],
    ));
    let sig = ok(&tool(root, "pdfsig", &[PDF]));
    assert!(sig.contains("Signature is Valid."), "{sig}");
    assert!(sig.contains("Total document signed"), "{sig}");
    let pdf = root.join(PDF);
    let pdf = pdf.to_str().expect("utf-8 path");
    let v = ok(&herald_env(root, pass, &["verify", pdf]));
    // Verifying also needs the password: the certificate is inside the .p12.
    let out = herald_env(root, None, &["verify", pdf]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("HERALD_PKCS12_PASSWORD"),
        "{}",
        text(&out)
    );
    assert!(v.starts_with("ok: "), "{v}");
    let page = std::fs::read_to_string(
        root.join("public/en/2014/world-day-against-trafficking/index.html"),
    )
    .expect("page");
    // The page names the signer from the certificate inside the .p12.
    let line = page
        .lines()
        .find(|l| l.contains("class=\"signature\""))
        .expect("the page says the PDF is signed");
    assert!(line.contains("(TEST ONLY, herald keys init)"), "{line}");
}
