//! The subcommands that manage the store: everything but `run`.
//!
//! `ch05-overlay import|images|rmi|diff|commit|ps|rm|save|load|pull|push` read and change the
//! store and print what they did; `run`, the runtime, is in `main.rs`. The
//! output imitates Docker's where there is a counterpart (`docker images`,
//! `docker diff`, `docker ps -a`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ch01_uts::say;

use crate::oci::{self, LayerIn};
use crate::registry::{self, Reference};
use crate::store::{Image, State, Store};
use crate::{diff, layer};

/// `import`, `images`, `rmi`, `diff`, `commit`, `ps`, `rm`.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Create an image from layer tars (.tar or .tar.gz), bottom layer first, or
    /// from an OCI image layout directory (as skopeo or umoci write it)
    Import {
        name: String,
        #[arg(required = true, value_name = "TARBALL")]
        tarballs: Vec<PathBuf>,
    },
    /// List the images
    Images,
    /// Remove an image, and the layers no other image or container uses
    Rmi { name: String },
    /// List the paths a container added (A), changed (C) or deleted (D)
    Diff { id: String },
    /// Save a container's read-write layer as a new image
    Commit { id: String, name: String },
    /// List the containers and their states
    Ps,
    /// Remove a container that is not running: unmount it, delete its layers and cgroup
    Rm { id: String },
    /// Write an image to a new directory as an OCI image layout
    Save { image: String, dir: PathBuf },
    /// Store the image of an OCI image layout directory (named by its tag, or NAME)
    Load {
        dir: PathBuf,
        /// The tag to take from the layout's index.json (default: its only image)
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// The image's name in the store (default: the tag)
        name: Option<String>,
    },
    /// Download an image from a registry: HOST:PORT/REPOSITORY[:TAG|@DIGEST]
    Pull {
        reference: Reference,
        /// The image's name in the store (default: the repository's last part)
        name: Option<String>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Upload an image to a registry: HOST:PORT/REPOSITORY[:TAG]
    Push {
        image: String,
        reference: Reference,
        #[command(flatten)]
        auth: Auth,
        /// Upload blobs larger than this in chunks of this many bytes (PATCH requests)
        #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
        chunk_size: u64,
    },
}

/// How to log in to a registry that asks.
#[derive(Debug, clap::Args)]
pub struct Auth {
    /// USER:PASSWORD for a registry that asks (Basic, or for a Bearer token);
    /// on a shared machine other users can read it in `ps`: Docker keeps it in a file
    #[arg(long, value_name = "USER:PASSWORD")]
    user: Option<String>,
}

impl StoreCommand {
    /// Carries out the subcommand and prints the result on stdout.
    pub fn execute(&self, store: &Store) -> Result<()> {
        match self {
            StoreCommand::Import { name, tarballs } if is_layout(tarballs) => {
                let (image, layers) = oci::load(store, &tarballs[0], None, Some(name))?;
                print_layers(&image, &layers);
            }
            StoreCommand::Import { name, tarballs } => {
                let (image, summaries) = store.import(name, tarballs)?;
                for summary in &summaries {
                    println!("{summary}");
                }
                println!("image {}: {}", image.name, layers(image.layers.len()));
            }
            StoreCommand::Images => {
                println!("{:<16} {:>6} {:>10}  TOP LAYER", "NAME", "LAYERS", "SIZE");
                for image in store.images()? {
                    let top = image.layers.last().map(String::as_str).unwrap_or("-");
                    println!(
                        "{:<16} {:>6} {:>10}  {}",
                        image.name,
                        image.layers.len(),
                        human(store.image_size(&image)?),
                        layer::short(top)
                    );
                }
            }
            StoreCommand::Rmi { name } => {
                for digest in store.remove_image(name)? {
                    println!("removed layer {}", layer::short(&digest));
                }
                println!("removed image {name}");
            }
            StoreCommand::Diff { id } => {
                let container = store.container(id)?;
                let lower = store.lower_layers(&container)?;
                for change in diff::changes(&store.dirs(id).upper, &lower)? {
                    println!("{change}");
                }
            }
            StoreCommand::Commit { id, name } => {
                let (image, summary) = store.commit(id, name)?;
                println!("{summary}, init-layer files left out {}", summary.skipped);
                println!("image {}: {}", image.name, layers(image.layers.len()));
            }
            StoreCommand::Ps => {
                println!("{:<14} {:<12} {:<34} COMMAND", "ID", "IMAGE", "STATE");
                for container in store.containers()? {
                    let state = store.state(&container);
                    let mut text = state.to_string();
                    if !matches!(state, State::Running(_)) && store.is_mounted(&container.id)? {
                        text.push_str(", mounted");
                    }
                    println!(
                        "{:<14} {:<12} {:<34} {}",
                        container.id,
                        container.image,
                        text,
                        container.command.join(" ")
                    );
                }
            }
            StoreCommand::Rm { id } => {
                store.remove_container(id)?;
                println!("{id}");
            }
            StoreCommand::Save { image, dir } => {
                let image = store.image(image)?;
                let digest = oci::save(store, &image, dir)?;
                println!(
                    "saved {} to {} as manifest {digest}",
                    image.name,
                    dir.display()
                );
            }
            StoreCommand::Load { dir, tag, name } => {
                let (image, layers) = oci::load(store, dir, tag.as_deref(), name.as_deref())?;
                print_layers(&image, &layers);
            }
            StoreCommand::Pull {
                reference,
                name,
                auth,
            } => {
                let name = name.as_deref().unwrap_or(reference.default_name());
                let (image, layers) = registry::pull(store, reference, name, auth.user.clone())?;
                print_layers(&image, &layers);
            }
            StoreCommand::Push {
                image,
                reference,
                auth,
                chunk_size,
            } => {
                let pushed =
                    registry::push(store, image, reference, auth.user.clone(), *chunk_size)?;
                println!(
                    "pushed {image} to {reference} as manifest {}",
                    pushed.digest
                );
            }
        }
        Ok(())
    }
}

/// Whether `import` was given one directory holding an OCI image layout.
fn is_layout(paths: &[PathBuf]) -> bool {
    paths.len() == 1 && paths[0].join("oci-layout").is_file()
}

/// One line per layer that came in, then the image.
fn print_layers(image: &Image, layers: &[LayerIn]) {
    for layer in layers {
        let what = if layer.fetched {
            "stored"
        } else {
            "already in the store"
        };
        println!("layer {}: {what}", layer::short(&layer.diff_id));
    }
    println!("image {}: {}", image.name, self::layers(image.layers.len()));
}

/// Twelve random hex digits, like Docker's short container IDs.
pub fn random_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    let mut urandom = std::fs::File::open("/dev/urandom").context("failed to open /dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).context("failed to read /dev/urandom")?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    say!("container id {id}");
    Ok(id)
}

/// `1 layer`, `2 layers`.
fn layers(n: usize) -> String {
    format!("{n} layer{}", if n == 1 { "" } else { "s" })
}

/// `1.9M`, `740K`: sizes as `du -h` prints them.
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{}K", b >> 10),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(human(2_100_000), "2.0M");
        assert_eq!(human(4096), "4K");
        assert_eq!(human(12), "12B");
        assert_eq!(layers(1), "1 layer");
        assert_eq!(layers(3), "3 layers");
    }

    #[test]
    fn ids_are_twelve_hex_digits() -> Result<()> {
        let id = random_id()?;
        assert_eq!(id.len(), 12);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, random_id()?);
        Ok(())
    }
}
