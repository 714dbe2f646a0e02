"""A fake Azure WireServer, HostGAPlugin and instance metadata service, for the real guest agent
(WALinuxAgent 2.7.3, Debian's `waagent`) to run extensions against.

A stand-in for the platform, which cannot run here: it serves what the agent asks for, in the
shapes it parses (see ../../../shared/GUEST-AGENT.md and WALinuxAgent's
`azurelinuxagent/common/protocol/{goal_state,wire,hostplugin,extensions_goal_state_from_extensions_config}.py`):

- WireServer, 168.63.129.16:80: `GET /?comp=versions`; `GET /machine/?comp=goalstate` (a new
  `Incarnation` whenever the test changes the goal); the `HostingEnvironmentConfig`,
  `SharedConfig` and `ExtensionsConfig` documents it names; the extension's manifest
  (`/manifest.xml`) and zips (`/packages/<name>-<version>.zip`, read from disk); `POST`s of
  telemetry and health (200, recorded).
- HostGAPlugin, 168.63.129.16:32526: `GET /versions`, `PUT /status` (the status blob the agent
  uploads, base64 in `content`: decoded and kept, in order), `GET /vmSettings` 404 (no Fast Track).
- IMDS, 169.254.169.254:80: `GET /metadata/instance/compute` (a small document).

It binds those addresses, so it only runs inside the test's network namespace, where
`tests/system/run` has put them on `lo`.
"""

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

WIRE = "168.63.129.16"
HOST_PLUGIN_PORT = 32526
IMDS = "169.254.169.254"
EXTENSION = "Microsoft.Azure.KeyVault.KeyVaultForLinux"
CONTAINER_ID = "c6d5526c-5ac2-4200-b6e2-56f2b70c5ab2"
INSTANCE_ID = "b61f93d0-e1ed-40b2-b067-22c243233448.akvvm-test_IN_0"


class Platform:
    """What the platform tells the agent (the goal), and what the agent sent back."""

    def __init__(self, package_dir):
        self.package_dir = Path(package_dir)
        self.lock = threading.Lock()
        self.incarnation = 1
        # None: no extension in the goal state (uninstalled).
        self.plugin = None
        self.uploads = []  # decoded status blobs, in the order they came
        self.requests = []  # (port, method, path), in order
        self.downloads = {}  # zip path -> times served

    def set_goal(self, version, state="enabled", seq=0, settings=None):
        """A new goal state: the extension at `version` in `state` with settings number `seq`."""
        with self.lock:
            self.plugin = {"version": version, "state": state, "seq": seq,
                           "settings": settings or {}}
            self.incarnation += 1

    def uninstall(self):
        """What Azure sends when the extension is deleted: the plugin with `state="uninstall"`."""
        with self.lock:
            self.plugin = dict(self.plugin, state="uninstall")
            self.incarnation += 1

    def remove_extension(self):
        """The goal state once the deletion is done: no plugin at all."""
        with self.lock:
            self.plugin = None
            self.incarnation += 1

    def zip_name(self, version):
        return f"{EXTENSION}-{version}.zip"

    # --- documents --------------------------------------------------------------------
    def goal_state(self):
        base = f"http://{WIRE}:80/machine/{CONTAINER_ID}/{INSTANCE_ID}"
        inc = self.incarnation
        return f"""<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>{inc}</Incarnation>
  <Machine>
    <ExpectedState>Started</ExpectedState>
    <StopRolesDeadlineHint>300000</StopRolesDeadlineHint>
    <LBProbePorts><Port>16001</Port></LBProbePorts>
    <ExpectHealthReport>FALSE</ExpectHealthReport>
  </Machine>
  <Container>
    <ContainerId>{CONTAINER_ID}</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>{INSTANCE_ID}</InstanceId>
        <State>Started</State>
        <Configuration>
          <HostingEnvironmentConfig>{escape(base + "?comp=config&type=hostingEnvironmentConfig&incarnation=" + str(inc))}</HostingEnvironmentConfig>
          <SharedConfig>{escape(base + "?comp=config&type=sharedConfig&incarnation=" + str(inc))}</SharedConfig>
          <ExtensionsConfig>{escape(base + "?comp=config&type=extensionsConfig&incarnation=" + str(inc))}</ExtensionsConfig>
          <FullConfig>{escape(base + "?comp=config&type=fullConfig&incarnation=" + str(inc))}</FullConfig>
          <ConfigName>{INSTANCE_ID}.{inc}.xml</ConfigName>
        </Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>
"""

    def hosting_environment(self):
        return f"""<?xml version="1.0" encoding="utf-8"?>
<HostingEnvironmentConfig version="1.0.0.0" goalStateIncarnation="{self.incarnation}">
  <StoredCertificates />
  <Deployment name="{CONTAINER_ID}" guid="{{{CONTAINER_ID}}}" incarnation="0" isNonCancellableTopologyChangeEnabled="false">
    <Service name="akvvm-test" guid="{{00000000-0000-0000-0000-000000000000}}" />
    <ServiceInstance name="{CONTAINER_ID}.0" guid="{{{CONTAINER_ID}}}" />
  </Deployment>
  <Incarnation number="1" instance="akvvm-test_IN_0" guid="{{{CONTAINER_ID}}}" />
  <Role guid="{{{CONTAINER_ID}}}" name="akvvm-test" hostingEnvironmentVersion="1" software="" softwareType="ApplicationPackage" entryPoint="" parameters="" settleTimeSeconds="10" />
</HostingEnvironmentConfig>
"""

    def shared_config(self):
        return f"""<?xml version="1.0" encoding="utf-8"?>
<SharedConfig version="1.0.0.0" goalStateIncarnation="{self.incarnation}">
  <Deployment name="{CONTAINER_ID}" guid="{{{CONTAINER_ID}}}" incarnation="0" isNonCancellableTopologyChangeEnabled="false">
    <Service name="akvvm-test" guid="{{00000000-0000-0000-0000-000000000000}}" />
    <ServiceInstance name="{CONTAINER_ID}.0" guid="{{{CONTAINER_ID}}}" />
  </Deployment>
  <Incarnation number="1" instance="akvvm-test_IN_0" guid="{{{CONTAINER_ID}}}" />
  <Role guid="{{{CONTAINER_ID}}}" name="akvvm-test" settleTimeSeconds="10" />
  <Instances>
    <Instance id="akvvm-test_IN_0" address="10.0.0.4">
      <FaultDomains randomId="0" updateId="0" updateCount="0" />
      <InputEndpoints />
    </Instance>
  </Instances>
</SharedConfig>
"""

    def extensions_config(self):
        plugins = settings = ""
        p = self.plugin
        if p is not None:
            manifest = f"http://{WIRE}:80/manifest.xml"
            plugins = (
                f'<Plugin name="{EXTENSION}" version="{p["version"]}" location="{manifest}" '
                f'state="{p["state"]}" autoUpgrade="false" failoverlocation="{manifest}" '
                f'runAsStartupTask="false" isJson="true" useExactVersion="true" />'
            )
            runtime = json.dumps({"runtimeSettings": [
                {"handlerSettings": {"publicSettings": p["settings"]}}]})
            settings = (
                f'<Plugin name="{EXTENSION}" version="{p["version"]}">'
                f'<RuntimeSettings seqNo="{p["seq"]}">{escape(runtime)}</RuntimeSettings>'
                f"</Plugin>"
            )
        ticks = 621355968000000000 + int(time.time() * 10_000_000)
        blob = escape(f"http://{WIRE}:80/statusblob/{CONTAINER_ID}?sv=2018-03-28&sr=b&sig=test")
        return f"""<?xml version="1.0" encoding="utf-8"?>
<Extensions version="1.0.0.0" goalStateIncarnation="{self.incarnation}">
  <Plugins>{plugins}</Plugins>
  <PluginSettings>{settings}</PluginSettings>
  <StatusUploadBlob statusBlobType="BlockBlob">{blob}</StatusUploadBlob>
  <InVMGoalStateMetaData inSvdSeqNo="{self.incarnation}" createdOnTicks="{ticks}" activityId="{uuid.uuid4()}" correlationId="{uuid.uuid4()}" />
</Extensions>
"""

    def manifest(self):
        entries = []
        for zip_path in sorted(self.package_dir.glob(f"{EXTENSION}-*.zip")):
            version = zip_path.name[len(EXTENSION) + 1:-len(".zip")]
            entries.append(
                f"<Plugin><Version>{version}</Version><Uris><Uri>"
                f"http://{WIRE}:80/packages/{quoteattr(zip_path.name)[1:-1]}</Uri></Uris></Plugin>")
        return ('<?xml version="1.0" encoding="utf-8"?>\n'
                '<PluginVersionManifest xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
                f"<Plugins>{''.join(entries)}</Plugins><InternalPlugins /></PluginVersionManifest>\n")

    # --- what the agent sent -------------------------------------------------------------
    def record_status(self, body):
        document = json.loads(body)
        content = json.loads(base64.b64decode(document["content"]))
        with self.lock:
            self.uploads.append(content)

    def handler_statuses(self):
        """Every uploaded `handlerAggregateStatus` entry of the extension, in order."""
        with self.lock:
            uploads = list(self.uploads)
        found = []
        for upload in uploads:
            for handler in upload.get("aggregateStatus", {}).get("handlerAggregateStatus", []):
                if handler.get("handlerName") == EXTENSION:
                    found.append(handler)
        return found

    def latest_upload(self):
        with self.lock:
            return self.uploads[-1] if self.uploads else None


def _handler(platform, port):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, body=b"", content_type="text/xml; charset=utf-8"):
            if isinstance(body, str):
                body = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):
            with platform.lock:
                platform.requests.append((port, "GET", self.path))
            path = self.path
            if port == "imds":
                if path.startswith("/metadata/instance"):
                    compute = {"location": "local", "name": "akvvm-test", "vmId": CONTAINER_ID,
                               "vmSize": "Standard_D2s_v3", "osType": "Linux",
                               "subscriptionId": "00000000-0000-0000-0000-000000000000",
                               "resourceGroupName": "akvvm-test", "placementGroupId": "",
                               "vmScaleSetName": "", "zone": "", "publisher": "",
                               "offer": "", "sku": "", "version": ""}
                    document = compute if "compute" in path else {"compute": compute}
                    return self._send(200, json.dumps(document), "application/json")
                return self._send(404, "not found")
            if port == "hostplugin":
                if path.startswith("/versions"):
                    return self._send(200, '["2015-09-01"]', "application/json")
                if path.startswith("/health"):
                    return self._send(200, "")
                return self._send(404, "not found")
            if path.startswith("/?comp=versions"):
                return self._send(200, '<?xml version="1.0" encoding="utf-8"?>\n<Versions>'
                                  "<Preferred><Version>2012-11-30</Version></Preferred>"
                                  "<Supported><Version>2012-11-30</Version></Supported>"
                                  "</Versions>\n")
            with platform.lock:
                if "comp=goalstate" in path:
                    return self._send(200, platform.goal_state())
                if "type=hostingEnvironmentConfig" in path:
                    return self._send(200, platform.hosting_environment())
                if "type=sharedConfig" in path:
                    return self._send(200, platform.shared_config())
                if "type=extensionsConfig" in path:
                    return self._send(200, platform.extensions_config())
                if path == "/manifest.xml":
                    return self._send(200, platform.manifest())
            if path.startswith("/packages/"):
                zip_path = platform.package_dir / Path(path).name
                if zip_path.is_file():
                    with platform.lock:
                        platform.downloads[zip_path.name] = platform.downloads.get(zip_path.name, 0) + 1
                    return self._send(200, zip_path.read_bytes(), "application/octet-stream")
            return self._send(404, "not found")

        def do_PUT(self):
            body = self._body()
            with platform.lock:
                platform.requests.append((port, "PUT", self.path))
            if port == "hostplugin" and self.path.startswith("/status"):
                platform.record_status(body)
                return self._send(200, "")
            if port == "wire" and self.path.startswith("/statusblob/"):
                # The direct route, used only when the HostGAPlugin fails: a block blob upload.
                with platform.lock:
                    platform.uploads.append(json.loads(body))
                return self._send(201, "")
            return self._send(404, "not found")

        def do_POST(self):
            self._body()
            with platform.lock:
                platform.requests.append((port, "POST", self.path))
            # Telemetry, health reports, role properties: accepted.
            return self._send(200, "")

    return Handler


class Servers:
    """The three listeners, serving `platform` from background threads."""

    def __init__(self, platform):
        self.servers = []
        for address, port, name in [(WIRE, 80, "wire"), (WIRE, HOST_PLUGIN_PORT, "hostplugin"),
                                    (IMDS, 80, "imds")]:
            server = ThreadingHTTPServer((address, port), _handler(platform, name))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    def stop(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()
