//! A client of the Kubernetes Container Runtime Interface (CRI): what a
//! kubelet says to containerd's CRI plugin, over gRPC on a unix socket.
//!
//! CRI has two services, `RuntimeService` (pod sandboxes and containers) and
//! `ImageService`; a pod's life is five calls: `RunPodSandbox` (the pause
//! container holds the pod's namespaces and network), `CreateContainer` and
//! `StartContainer` for each container, then `StopContainer`,
//! `RemoveContainer`, `StopPodSandbox`, `RemovePodSandbox`. The messages
//! come from the `k8s-cri` crate (generated from the CRI protobufs, package
//! `runtime.v1`, the version containerd 1.6 serves beside `v1alpha2`).
//!
//! The client is blocking: it owns a single-threaded tokio runtime and waits
//! for each answer, as a test (or a small kubelet) wants. What it leaves
//! out: streaming (`Exec`, `Attach`, `PortForward` answer with a URL to a
//! streaming server), image pulls from a registry, and TLS.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerStatus, ContainerStatusRequest, CreateContainerRequest,
    ListContainersRequest, ListImagesRequest, ListPodSandboxRequest, PodSandboxConfig,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest, VersionRequest, VersionResponse,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1;

/// How long a call may take: a runtime that never answers (a wedged shim)
/// must fail the call, not hang its caller.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Makes a call on one of the two clients and waits for the answer, at
/// most [`CALL_TIMEOUT`].
macro_rules! call {
    ($self:ident, $client:ident . $method:ident ($request:expr)) => {{
        let answer = $self.$client.$method($request);
        match $self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, answer).await })
        {
            Ok(answer) => answer.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("no answer within {CALL_TIMEOUT:?}")),
        }
    }};
}

/// A connection to a CRI endpoint (containerd's socket).
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    // ANCHOR: connect
    /// Connects to the CRI socket at `socket`. gRPC speaks HTTP/2, whose
    /// client wants a URI; the connector ignores it and dials the socket.
    pub fn connect(socket: &Path) -> Result<Cri> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start a tokio runtime")?;
        let path: PathBuf = socket.to_path_buf();
        let channel = rt
            .block_on(async {
                Endpoint::try_from("http://[::1]:0")?
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                        }
                    }))
                    .await
            })
            .with_context(|| format!("failed to connect to the CRI socket {}", socket.display()))?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }
    // ANCHOR_END: connect

    /// The runtime's name and versions (`RuntimeApiVersion` "v1").
    pub fn version(&mut self) -> Result<VersionResponse> {
        let request = VersionRequest {
            version: "v1".into(),
        };
        let answer = call!(self, runtime.version(request));
        Ok(answer.context("CRI Version failed")?.into_inner())
    }

    /// The images the CRI plugin knows, by their references.
    pub fn images(&mut self) -> Result<Vec<String>> {
        let answer = call!(self, images.list_images(ListImagesRequest { filter: None }));
        let images = answer.context("CRI ListImages failed")?.into_inner().images;
        Ok(images.into_iter().flat_map(|i| i.repo_tags).collect())
    }

    /// Starts a pod sandbox with `config` on runtime handler `handler`
    /// (a `runtimes.<handler>` of containerd's config); returns its id.
    pub fn run_pod_sandbox(&mut self, config: &PodSandboxConfig, handler: &str) -> Result<String> {
        let request = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let answer = call!(self, runtime.run_pod_sandbox(request));
        Ok(answer
            .context("CRI RunPodSandbox failed")?
            .into_inner()
            .pod_sandbox_id)
    }

    /// Creates a container in pod `pod` (made with `pod_config`); returns its id.
    pub fn create_container(
        &mut self,
        pod: &str,
        config: &ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> Result<String> {
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config.clone()),
            sandbox_config: Some(pod_config.clone()),
        };
        let answer = call!(self, runtime.create_container(request));
        Ok(answer
            .context("CRI CreateContainer failed")?
            .into_inner()
            .container_id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<()> {
        let request = StartContainerRequest {
            container_id: id.into(),
        };
        let answer = call!(self, runtime.start_container(request));
        answer.with_context(|| format!("CRI StartContainer {id} failed"))?;
        Ok(())
    }

    /// Stops a container: TERM, then KILL after `timeout` seconds.
    pub fn stop_container(&mut self, id: &str, timeout: i64) -> Result<()> {
        let request = StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        let answer = call!(self, runtime.stop_container(request));
        answer.with_context(|| format!("CRI StopContainer {id} failed"))?;
        Ok(())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<()> {
        let request = RemoveContainerRequest {
            container_id: id.into(),
        };
        let answer = call!(self, runtime.remove_container(request));
        answer.with_context(|| format!("CRI RemoveContainer {id} failed"))?;
        Ok(())
    }

    /// A container's status: state, exit code, and (verbose) the runtime's
    /// `info`, a JSON text with the process's `pid`.
    pub fn container_status(&mut self, id: &str) -> Result<(ContainerStatus, String)> {
        let request = ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        let answer = call!(self, runtime.container_status(request));
        let answer = answer
            .with_context(|| format!("CRI ContainerStatus {id} failed"))?
            .into_inner();
        let info = answer.info.get("info").cloned().unwrap_or_default();
        Ok((
            answer
                .status
                .with_context(|| format!("no status of {id}"))?,
            info,
        ))
    }

    pub fn stop_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        let answer = call!(self, runtime.stop_pod_sandbox(request));
        answer.with_context(|| format!("CRI StopPodSandbox {id} failed"))?;
        Ok(())
    }

    pub fn remove_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        let answer = call!(self, runtime.remove_pod_sandbox(request));
        answer.with_context(|| format!("CRI RemovePodSandbox {id} failed"))?;
        Ok(())
    }

    /// The ids of all pod sandboxes.
    pub fn pod_sandboxes(&mut self) -> Result<Vec<String>> {
        let answer = call!(
            self,
            runtime.list_pod_sandbox(ListPodSandboxRequest { filter: None })
        );
        let items = answer
            .context("CRI ListPodSandbox failed")?
            .into_inner()
            .items;
        Ok(items.into_iter().map(|p| p.id).collect())
    }

    /// The ids of all containers.
    pub fn containers(&mut self) -> Result<Vec<String>> {
        let answer = call!(
            self,
            runtime.list_containers(ListContainersRequest { filter: None })
        );
        let items = answer
            .context("CRI ListContainers failed")?
            .into_inner()
            .containers;
        Ok(items.into_iter().map(|c| c.id).collect())
    }
}
