//! The sandbox image, built locally because the engine cannot pull. Its root
//! filesystem is tiny: merged-`/usr` symlinks, mount points and a minimal
//! `/etc` (users, the host's `/etc/alternatives` symlinks and Java's config,
//! which Debian keeps outside `/usr`). The host's `/usr` is bind-mounted
//! read-only at run time, the way isolate binds it. The tag is a hash of the
//! root filesystem, so a host whose alternatives change gets a fresh image.
//!
//! In production an operator would instead ship one image per language,
//! built in CI from pinned Debian packages and pushed to a registry the
//! edges can reach; the container settings stay the same.

use std::path::Path;

use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt as _;

use crate::engine::{DockerEngine, SandboxError};

/// Repository name of the image.
pub const IMAGE_REPO: &str = "lyceum/sandbox";
/// The unprivileged user and group every sandboxed process runs as.
pub const SANDBOX_UID: u32 = 65534;

fn add_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_size(0);
    header.set_mtime(0);
    builder.append_data(&mut header, path, std::io::empty())
}

fn add_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    header.set_mtime(0);
    builder.append_data(&mut header, path, body)
}

fn add_symlink(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    target: &Path,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_mode(0o777);
    header.set_size(0);
    header.set_mtime(0);
    builder.append_link(&mut header, path, target)
}

/// Copies a host directory of `/etc` (files and symlinks, sorted so the
/// archive is reproducible) into the archive.
fn add_host_tree(
    builder: &mut tar::Builder<Vec<u8>>,
    host: &Path,
    inside: &str,
) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(host) else {
        return Ok(());
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    add_dir(builder, inside, 0o755)?;
    for entry in entries {
        let name = entry.file_name();
        let inside_path = format!("{inside}/{}", name.to_string_lossy());
        let file_type = entry.file_type()?;
        if file_type.is_symlink() {
            add_symlink(builder, &inside_path, &std::fs::read_link(entry.path())?)?;
        } else if file_type.is_dir() {
            add_host_tree(builder, &entry.path(), &inside_path)?;
        } else if file_type.is_file() {
            add_file(builder, &inside_path, &std::fs::read(entry.path())?)?;
        }
    }
    Ok(())
}

/// Builds the root filesystem as a tar archive.
///
/// # Errors
/// Fails when a host file cannot be read.
pub fn root_filesystem() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        add_symlink(&mut builder, link, Path::new(target))?;
    }
    // /sbin stays a real directory: Docker's init is mounted at /sbin/docker-init,
    // which cannot land inside the read-only host /usr.
    for dir in [
        "usr",
        "sbin",
        "proc",
        "sys",
        "dev",
        "etc",
        "opt",
        "opt/lyceum",
    ] {
        add_dir(&mut builder, dir, 0o755)?;
    }
    for dir in ["work", "tmp"] {
        add_dir(&mut builder, dir, 0o1777)?;
    }
    add_file(
        &mut builder,
        "etc/passwd",
        b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/work:/usr/sbin/nologin\n",
    )?;
    add_file(&mut builder, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")?;
    add_file(
        &mut builder,
        "etc/nsswitch.conf",
        b"passwd: files\ngroup: files\nhosts: files\n",
    )?;
    for empty in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        add_file(&mut builder, empty, b"")?;
    }
    if let Ok(cache) = std::fs::read("/etc/ld.so.cache") {
        add_file(&mut builder, "etc/ld.so.cache", &cache)?;
    }
    add_host_tree(
        &mut builder,
        Path::new("/etc/alternatives"),
        "etc/alternatives",
    )?;
    if let Ok(entries) = std::fs::read_dir("/etc") {
        let mut java: Vec<_> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("java-") && name.ends_with("-openjdk"))
            .collect();
        java.sort();
        for name in java {
            add_host_tree(
                &mut builder,
                &Path::new("/etc").join(&name),
                &format!("etc/{name}"),
            )?;
        }
    }
    builder.into_inner()
}

/// Makes sure the image for this host exists and returns its reference.
///
/// # Errors
/// [`SandboxError::Image`] when the archive cannot be built or imported.
pub async fn ensure_image(engine: &DockerEngine) -> Result<String, SandboxError> {
    let archive = tokio::task::spawn_blocking(root_filesystem)
        .await
        .map_err(|err| SandboxError::Image(err.to_string()))?
        .map_err(|err| SandboxError::Image(format!("root filesystem: {err}")))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &archive);
    let tag: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reference = format!("{IMAGE_REPO}:{tag}");
    if engine.docker().inspect_image(&reference).await.is_ok() {
        return Ok(reference);
    }
    tracing::info!(image = %reference, bytes = archive.len(), "importing the sandbox image");
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(IMAGE_REPO.to_owned()),
        tag: Some(tag),
        changes: vec![
            "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
            "ENV HOME=/work".to_owned(),
            "ENV TMPDIR=/tmp".to_owned(),
            "ENV LANG=C.UTF-8".to_owned(),
            "WORKDIR /work".to_owned(),
            format!("USER {SANDBOX_UID}:{SANDBOX_UID}"),
        ],
        ..Default::default()
    };
    let mut progress = engine.docker().create_image(
        Some(options),
        Some(bollard::body_full(archive.into())),
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(|err| SandboxError::Image(format!("import: {err}")))?;
    }
    engine
        .docker()
        .inspect_image(&reference)
        .await
        .map_err(|err| SandboxError::Image(format!("imported image not found: {err}")))?;
    Ok(reference)
}
