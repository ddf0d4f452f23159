# SPDX-License-Identifier: Apache-2.0
"""A scripted xDS management server (ADS, state of the world, v3) for the
tests, on Debian's python3-grpcio with generic handlers and python3-protobuf
classes that protoc generates from libmesh/xds/proto (the same field
numbers libmesh decodes with).  Imported by the interop test; run alone it
serves one listener/cluster/endpoint set and prints its port."""
import atexit
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, '..', '..', 'libmesh', 'xds', 'proto')
_gen = tempfile.mkdtemp(prefix='xds_py_')
atexit.register(shutil.rmtree, _gen, True)
subprocess.check_call(['protoc', '-I', PROTO, '--python_out', _gen] +
                      [f for f in sorted(os.listdir(PROTO)) if f.endswith('.proto')])
sys.path.insert(0, _gen)
import base_pb2  # noqa: E402
import cluster_pb2  # noqa: E402
import endpoint_pb2  # noqa: E402
import filters_pb2  # noqa: E402
import listener_pb2  # noqa: E402
import route_pb2  # noqa: E402

P = 'type.googleapis.com/'
LDS = P + 'envoy.config.listener.v3.Listener'
RDS = P + 'envoy.config.route.v3.RouteConfiguration'
CDS = P + 'envoy.config.cluster.v3.Cluster'
EDS = P + 'envoy.config.endpoint.v3.ClusterLoadAssignment'
HCM = P + 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
ROUTER = P + 'envoy.extensions.filters.http.router.v3.Router'
AGGREGATE = P + 'envoy.extensions.clusters.aggregate.v3.ClusterConfig'
METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources'


def any_of(url, msg):
    return base_pb2.Any(type_url=url, value=msg.SerializeToString())


def listener(name, route_name):
    h = listener_pb2.HttpConnectionManager()
    h.rds.config_source.ads.SetInParent()
    h.rds.route_config_name = route_name
    h.http_filters.add(name='router', typed_config=any_of(ROUTER, filters_pb2.Router()))
    l = listener_pb2.Listener(name=name)
    l.api_listener.api_listener.CopyFrom(any_of(HCM, h))
    return l


def routes(name, split):
    """split: [(cluster, weight)]"""
    rc = route_pb2.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name='vh', domains=['*'])
    r = vh.routes.add()
    r.match.prefix = ''
    if len(split) == 1:
        r.route.cluster = split[0][0]
    else:
        for c, w in split:
            cw = r.route.weighted_clusters.clusters.add(name=c)
            cw.weight.value = w
        # gRPC before 1.57 wants total_weight (default 100) to match
        r.route.weighted_clusters.total_weight.value = sum(w for _, w in split)
    return rc


def route_config(name, vhosts):
    """A RouteConfiguration with several virtual hosts and routes.
    vhosts: [(domains, [route])]; a route is a dict with one of prefix /
    path / regex, and optionally: name, case_sensitive (bool), headers
    [(header, exact value)], fraction_ppm, cluster or split [(cluster,
    weight)], timeout_ms, retry (retry_on, num_retries), hash_header,
    fault (delay_ms, delay_pct, abort_http, abort_pct)."""
    rc = route_pb2.RouteConfiguration(name=name)
    for i, (domains, rts) in enumerate(vhosts):
        vh = rc.virtual_hosts.add(name='vh%d' % i, domains=domains)
        for d in rts:
            r = vh.routes.add(name=d.get('name', ''))
            if 'prefix' in d:
                r.match.prefix = d['prefix']
            elif 'path' in d:
                r.match.path = d['path']
            else:
                r.match.safe_regex.regex = d['regex']
            if 'case_sensitive' in d:
                r.match.case_sensitive.value = d['case_sensitive']
            for hn, hv in d.get('headers', []):
                r.match.headers.add(name=hn, exact_match=hv)
            if 'fraction_ppm' in d:
                r.match.runtime_fraction.default_value.numerator = d['fraction_ppm']
                r.match.runtime_fraction.default_value.denominator = 2  # MILLION
            if 'split' in d:
                for c, w in d['split']:
                    cw = r.route.weighted_clusters.clusters.add(name=c)
                    cw.weight.value = w
                r.route.weighted_clusters.total_weight.value = sum(w for _, w in d['split'])
            else:
                r.route.cluster = d['cluster']
            if 'timeout_ms' in d:
                r.route.timeout.seconds = d['timeout_ms'] // 1000
                r.route.timeout.nanos = (d['timeout_ms'] % 1000) * 1000000
            if 'retry' in d:
                r.route.retry_policy.retry_on = d['retry'][0]
                r.route.retry_policy.num_retries.value = d['retry'][1]
            if 'hash_header' in d:
                r.route.hash_policy.add().header.header_name = d['hash_header']
    return rc


def cluster(name):
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.eds_cluster_config.eds_config.ads.SetInParent()
    return c


def aggregate(name, children):
    """An aggregate cluster (gRFC A37): children in priority order."""
    c = cluster_pb2.Cluster(name=name)
    c.cluster_type.name = 'envoy.clusters.aggregate'
    c.cluster_type.typed_config.CopyFrom(
        any_of(AGGREGATE, cluster_pb2.AggregateClusterConfig(clusters=children)))
    return c


def logical_dns(name, host, port, refresh_ms=None, family=None, respect_ttl=False):
    """A LOGICAL_DNS cluster (gRFC A37): one endpoint host:port, resolved
    by the client every refresh_ms (None: the 5 s default)."""
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.LOGICAL_DNS)
    sa = c.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    sa.address = host
    sa.port_value = port
    c.load_assignment.cluster_name = name
    if refresh_ms is not None:
        c.dns_refresh_rate.seconds = refresh_ms // 1000
        c.dns_refresh_rate.nanos = (refresh_ms % 1000) * 1000000
    if family is not None:
        c.dns_lookup_family = family
    c.respect_dns_ttl = respect_ttl
    return c


def cla(name, localities, health=None):
    """localities: [(zone, priority, weight, [(ip, port), ...])]"""
    a = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    for zone, prio, weight, eps in localities:
        l = a.endpoints.add(priority=prio)
        l.locality.region = 'r'
        l.locality.zone = zone
        l.load_balancing_weight.value = weight
        for ip, port in eps:
            e = l.lb_endpoints.add()
            e.endpoint.address.socket_address.address = ip
            e.endpoint.address.socket_address.port_value = port
            e.health_status = health if health is not None else endpoint_pb2.HEALTHY
    return a


def acked(plane, version, urls, timeout=20):
    """Every type in urls ACKed version (the client applied it first)."""
    end = time.time() + timeout
    while time.time() < end:
        with plane.lock:
            got = {rq.type_url for rq in plane.requests
                   if rq.response_nonce and rq.version_info == str(version)
                   and not rq.HasField('error_detail')}
        if all(u in got for u in urls):
            return True
        time.sleep(0.02)
    return False


class ControlPlane:
    """Serves the current state (type url -> {name: message}) to every
    stream; push() replaces resources and sends them to open streams."""

    def __init__(self):
        self.state = {LDS: {}, RDS: {}, CDS: {}, EDS: {}}
        self.version = 0
        self.lock = threading.Lock()
        self.streams = []
        self.requests = []   # every DiscoveryRequest received (for checks)
        self.server = None
        self.silent = set()  # LDS or CDS names never answered (gRFC A27's timer)

    def set(self, url, msg):
        with self.lock:
            self.state[url][msg.name if hasattr(msg, 'name') and url != EDS else msg.cluster_name] = msg

    def response(self, url, names):
        r = base_pb2.DiscoveryResponse(version_info=str(self.version), type_url=url,
                                       nonce='%s-%d' % (url[-8:], self.version))
        for n, m in sorted(self.state[url].items()):
            if url in (LDS, CDS) or n in names:
                r.resources.add().CopyFrom(any_of(url, m))
        return r

    def push(self):
        with self.lock:
            self.version += 1
            for q, subs in self.streams:
                for url, names in subs.items():
                    q.put(self.response(url, names))

    def _stream(self, request_iterator, context):
        q = queue.Queue()
        subs = {}
        entry = (q, subs)
        with self.lock:
            self.streams.append(entry)

        def reader():
            try:
                for rq in request_iterator:
                    with self.lock:
                        self.requests.append(rq)
                        if rq.response_nonce == '' or set(rq.resource_names) != subs.get(rq.type_url):
                            subs[rq.type_url] = set(rq.resource_names)
                            if not (rq.type_url in (LDS, CDS) and
                                    self.silent & subs[rq.type_url]):
                                q.put(self.response(rq.type_url, subs[rq.type_url]))
            except grpc.RpcError:
                pass  # the client went away
            q.put(None)
        threading.Thread(target=reader, daemon=True).start()
        try:
            while True:
                r = q.get()
                if r is None:
                    return
                yield r
        finally:
            with self.lock:
                self.streams.remove(entry)

    def start(self, port=0, unix=None, tls=None):
        """tls: None (insecure), or (key_pem, cert_pem, ca_pem or None,
        require_client_auth) for grpc.ssl_server_credentials."""
        from concurrent import futures
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=[('grpc.so_reuseport', 0)])
        h = grpc.method_handlers_generic_handler(
            'envoy.service.discovery.v3.AggregatedDiscoveryService',
            {'StreamAggregatedResources': grpc.stream_stream_rpc_method_handler(
                self._stream, request_deserializer=base_pb2.DiscoveryRequest.FromString,
                response_serializer=base_pb2.DiscoveryResponse.SerializeToString)})
        self.server.add_generic_rpc_handlers((h,))
        addr = 'unix:' + unix if unix else '127.0.0.1:%d' % port
        if tls:
            key, cert, ca, require = tls
            creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                                require_client_auth=require)
            self.port = self.server.add_secure_port(addr, creds)
        else:
            self.port = self.server.add_insecure_port(addr)
        self.server.start()
        return self.port

    def stop(self):
        if self.server:
            self.server.stop(0)
