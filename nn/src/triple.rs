//! Matrix Beaver triples: secret × secret products whose HE work runs before the operands
//! exist (attention's Q·Kᵀ, E·V and the normalisation diag(r)·O in an offline phase).
//!
//! **Offline** ([`generate_triples`]): each party draws its shares of A and B uniformly over
//! Z_2^64 from its own PRG; the existing HE product ([`he_linear::secret_product`], full
//! window, circuit-private responses) gives both parties shares of C = A·B (or, for a
//! [`TripleShape::RowScale`], C_ij = a_i·B_ij, run as diag(a)·B); an element-wise triple
//! ([`TripleShape::Elementwise`], SwiGLU's product) is made by the Gilboa product on COTs
//! instead. Nothing depends on the inputs, so the whole cost, COT extension included, moves
//! out of the online phase.
//!
//! **Online** ([`triple_products`]): with shares of X and Y, each party sends X_p − A_p and
//! Y_p − B_p (both at once: one round), both open D = X − A and E = Y − B, and
//! X·Y = D·E + D·B + A·E + C is a local sum of products of public D, E with shares (the
//! server adds D·E). The server adds half a unit of bit `shift`, and a known-MSB truncation
//! (2 flights) divides by 2^shift: shares of ⌊X·Y / 2^shift⌉ or one less.
//!
//! What each party sees: D and E, uniform over Z_2^64 whatever X and Y are (A and B are
//! uniform and used once; [`crate::offline::OfflineStore`] refuses a second use of an
//! entry). Mirror: [`crate::matmul::matmul_mirror`] (and the row scaling's round-to-nearest).
//! Cost: [`triple_products_cost`] online, [`generate_cost`] offline.
//!
//! ```
//! use nn::triple::TripleShape;
//! use he_linear::matrix::ProductShape;
//! // A query row of 64 against 45 keys: the online step opens 64 + 64·45 words per party.
//! let shape = TripleShape::Matmul(ProductShape { k: 1, m: 64, n: 45 });
//! assert_eq!(shape.opened_words(), 64 + 64 * 45);
//! ```
use crate::cast::{truncate_cost, truncate_cots};
use crate::keys::HeKeys;
use crate::linear::ring_matmul;
use crate::matmul::{he_products, products_cost};
use crate::offline::OfflineStore;
use he_linear::matrix::{MatDims, ProductShape, RingMatrix};
use he_linear::params::HeParams;
use he_linear::response::Window;
use mpc_core::{AesPrg, Dims, Error, Result, Ring};
use ot_nonlinear::block::{pack_values, packed_len, unpack_values};
use ot_nonlinear::mpc::product::{mul, mul_cost, mul_cots};
use ot_nonlinear::mpc::trunc::TruncKind;
use ot_nonlinear::mpc::{trunc_cast, Cost, CotDemand, Session, Side};

/// The product a triple serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TripleShape {
    /// X (k×m) · Y (m×n).
    Matmul(ProductShape),
    /// diag(x)·Y: x of `rows` entries scales the rows of Y (rows × cols).
    RowScale(MatDims),
    /// x ⊙ y, element-wise on vectors of this length (made with OT: HE has no element-wise
    /// product in the coefficient encoding).
    Elementwise(usize),
}

impl TripleShape {
    /// Words of A, B and C.
    pub fn sizes(&self) -> [usize; 3] {
        match *self {
            TripleShape::Matmul(ProductShape { k, m, n }) => [k * m, m * n, k * n],
            TripleShape::RowScale(MatDims { rows, cols }) => [rows, rows * cols, rows * cols],
            TripleShape::Elementwise(n) => [n, n, n],
        }
    }

    /// Words one party sends online (its shares of X − A and Y − B).
    pub fn opened_words(&self) -> usize {
        let [a, b, _] = self.sizes();
        a + b
    }

    /// Outputs of the product.
    pub fn outputs(&self) -> usize {
        self.sizes()[2]
    }

    /// The HE product that makes C: (k, m, n), the row scaling as diag(a)·B; `None` for an
    /// element-wise triple (made with OT).
    fn product(&self) -> Option<(usize, usize, usize)> {
        match *self {
            TripleShape::Matmul(ProductShape { k, m, n }) => Some((k, m, n)),
            TripleShape::RowScale(MatDims { rows, cols }) => Some((rows, rows, cols)),
            TripleShape::Elementwise(_) => None,
        }
    }

    /// The shape as four metadata words (kind, then its dimensions).
    fn words(&self) -> [u64; 4] {
        let w = |v: [usize; 4]| v.map(|x| x as u64);
        match *self {
            TripleShape::Matmul(ProductShape { k, m, n }) => w([0, k, m, n]),
            TripleShape::RowScale(MatDims { rows, cols }) => w([1, rows, cols, 0]),
            TripleShape::Elementwise(n) => w([2, n, 0, 0]),
        }
    }
}

/// One party's shares of a triple: A, B uniform, C = A·B (or the row scaling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Triple {
    shape: TripleShape,
    a: Vec<u64>,
    b: Vec<u64>,
    c: Vec<u64>,
}

/// The digest single-triple entries are filed under (their shape is the metadata).
const DIGEST: [u8; 32] = *b"nn triple v1 ...................";

impl Triple {
    /// Files this triple as entry `name` of `store`.
    pub fn put(&self, store: &OfflineStore, name: &str) -> Result<()> {
        store.put(name, &DIGEST, &self.shape.words(), &self.to_words())
    }

    /// Consumes entry `name` of `store`, which must hold a triple of `shape` (refused
    /// otherwise, or if used before).
    pub fn take(store: &OfflineStore, name: &str, shape: TripleShape) -> Result<Triple> {
        let len = shape.sizes().iter().sum();
        let words = store.take(name, &DIGEST, &shape.words(), len)?;
        Triple::from_words(shape, &words)
    }

    /// The product it serves.
    pub fn shape(&self) -> TripleShape {
        self.shape
    }

    /// This party's shares of A, B and C.
    pub(crate) fn parts(&self) -> [&[u64]; 3] {
        [&self.a, &self.b, &self.c]
    }

    /// A, B and C one after the other (for an offline store).
    pub fn to_words(&self) -> Vec<u64> {
        [&self.a[..], &self.b, &self.c].concat()
    }

    /// The triple of `shape` from [`Triple::to_words`]'s layout.
    pub fn from_words(shape: TripleShape, words: &[u64]) -> Result<Triple> {
        let [a, b, c] = shape.sizes();
        if words.len() != a + b + c {
            return Err(Error::malformed(
                format!("triple of {shape:?}"),
                Dims::Len(words.len()),
                Dims::Len(a + b + c),
            ));
        }
        Ok(Triple {
            shape,
            a: words[..a].to_vec(),
            b: words[a..a + b].to_vec(),
            c: words[a + b..].to_vec(),
        })
    }
}

/// Shares of one triple per shape, A and B drawn from this party's PRG: the matrix ones in
/// the same HE flights (2 per `max_revealed` outputs,
/// [`he_linear::secret_product::secret_products`]), then the
/// element-wise ones in one Gilboa product on COTs ([`mul`], the COTs reserved here).
pub fn generate_triples(
    sess: &mut Session,
    he: &HeKeys<'_>,
    shapes: &[TripleShape],
) -> Result<Vec<Triple>> {
    let mut prg = AesPrg::new(sess.fresh_seed());
    let mut triples = Vec::with_capacity(shapes.len());
    let mut mats = Vec::with_capacity(shapes.len());
    for &shape in shapes {
        let [a, b, _] = shape.sizes();
        let (a, b) = (prg.u64s(a), prg.u64s(b));
        if let Some((k, m, n)) = shape.product() {
            let x = match shape {
                TripleShape::RowScale(_) => {
                    let mut diag = RingMatrix::zeros(k, k);
                    for (i, &ai) in a.iter().enumerate() {
                        diag.data_mut()[i * k + i] = ai;
                    }
                    diag
                }
                _ => RingMatrix::new(k, m, a.clone())?,
            };
            mats.push((x, RingMatrix::new(m, n, b.clone())?));
        }
        triples.push(Triple {
            shape,
            a,
            b,
            c: Vec::new(),
        });
    }
    let (matrix, elementwise): (Vec<&mut Triple>, Vec<&mut Triple>) = triples
        .iter_mut()
        .partition(|t| t.shape.product().is_some());
    if !mats.is_empty() {
        let prods = he_products(sess, he, &mats, Window::full(he.product_params))?;
        for (t, p) in matrix.into_iter().zip(prods) {
            t.c = p.data().to_vec();
        }
    }
    if !elementwise.is_empty() {
        let a: Vec<u64> = elementwise
            .iter()
            .flat_map(|t| t.a.iter().copied())
            .collect();
        let b: Vec<u64> = elementwise
            .iter()
            .flat_map(|t| t.b.iter().copied())
            .collect();
        sess.reserve(mul_cots(a.len(), Ring::R64))?;
        let c = mul(sess, &a, &b, Ring::R64)?;
        let mut at = 0;
        for t in elementwise {
            t.c = c[at..at + t.a.len()].to_vec();
            at += t.a.len();
        }
    }
    Ok(triples)
}

/// Exact cost of [`generate_triples`] (COT extensions excluded).
pub fn generate_cost(params: &HeParams, shapes: &[TripleShape]) -> Result<Cost> {
    let products: Vec<_> = shapes.iter().filter_map(TripleShape::product).collect();
    let elementwise: usize = shapes
        .iter()
        .filter(|t| t.product().is_none())
        .map(TripleShape::outputs)
        .sum();
    let he = products_cost(params, &products, Window::full(params))?;
    Ok(if elementwise == 0 {
        he
    } else {
        he.then(mul_cost(elementwise, 1, Ring::R64))
    })
}

/// Sends this party's shares of masked operands (packed to `ring`'s bits) and returns the
/// opened values: one round, both parties sending at once. The openings of the
/// normalisations' and the power products' correlations ([`crate::norm_offline`],
/// [`crate::activation_offline`]).
pub(crate) fn open_packed(sess: &mut Session, mine: &[u64], ring: Ring) -> Result<Vec<u64>> {
    sess.ch.send(&pack_values(mine, ring.bits()))?;
    sess.ch.flush()?;
    let theirs = sess.ch.recv_vec(packed_len(mine.len(), ring.bits()))?;
    let theirs = unpack_values(&theirs, mine.len(), ring.bits());
    Ok(mine
        .iter()
        .zip(&theirs)
        .map(|(&m, &t)| ring.add(m, t))
        .collect())
}

/// How [`triple_products`] rescales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// ⌊X·Y / 2^shift⌉ (attention's products, as their mirrors round).
    Nearest,
    /// ⌊X·Y / 2^shift⌋ (the element-wise product, as its mirror truncates).
    Floor,
}

/// Shares of X_i·Y_i / 2^shift rounded as `rounding` says (or one less) in Z_2^64 for every
/// operand pair (row-major shares; a [`TripleShape::RowScale`]'s X is the row scalars), each
/// on its triple: one round of openings, then one truncation of all outputs. `shift` ≥ 1;
/// the products must stay below 2^62 in magnitude.
pub fn triple_products(
    sess: &mut Session,
    triples: &[Triple],
    operands: &[(&[u64], &[u64])],
    shift: u32,
    rounding: Rounding,
) -> Result<Vec<Vec<u64>>> {
    if triples.len() != operands.len() {
        return Err(Error::shape(
            "operand pairs (one per triple)",
            operands.len(),
            triples.len(),
        ));
    }
    if !(1..64).contains(&shift) {
        return Err(Error::out_of_range(
            "triple product shift",
            shift as usize,
            Dims::within(1, 63),
        ));
    }
    let mut mine = Vec::new();
    for (t, (x, y)) in triples.iter().zip(operands) {
        let [a, b, _] = t.shape.sizes();
        if x.len() != a || y.len() != b {
            return Err(Error::shape(
                format!("operands of a triple product of {:?}", t.shape),
                [x.len(), y.len()],
                [a, b],
            ));
        }
        mine.extend(x.iter().zip(&t.a).map(|(x, a)| x.wrapping_sub(*a)));
        mine.extend(y.iter().zip(&t.b).map(|(y, b)| y.wrapping_sub(*b)));
    }
    sess.ch.send_u64s(&mine)?;
    let theirs = sess.ch.recv_u64s(mine.len())?;
    let opened: Vec<u64> = mine
        .iter()
        .zip(&theirs)
        .map(|(m, t)| m.wrapping_add(*t))
        .collect();
    let half = match rounding {
        Rounding::Nearest => 1u64 << (shift - 1),
        Rounding::Floor => 0,
    };
    let server = sess.is_server();
    let mut outputs = Vec::with_capacity(triples.len());
    let mut flat = Vec::new();
    let mut at = 0;
    for t in triples {
        let [a, b, _] = t.shape.sizes();
        let (d, e) = (&opened[at..at + a], &opened[at + a..at + a + b]);
        at += a + b;
        let mut z = t.c.clone();
        let add = |z: &mut [u64], p: Vec<u64>| {
            z.iter_mut()
                .zip(p)
                .for_each(|(z, p)| *z = z.wrapping_add(p))
        };
        match t.shape {
            TripleShape::Matmul(ProductShape { k, m, n }) => {
                add(&mut z, ring_matmul(d, &t.b, k, m, n));
                add(&mut z, ring_matmul(&t.a, e, k, m, n));
                if server {
                    add(&mut z, ring_matmul(d, e, k, m, n));
                }
            }
            TripleShape::Elementwise(_) => {
                for (i, z) in z.iter_mut().enumerate() {
                    let mut v = d[i]
                        .wrapping_mul(t.b[i])
                        .wrapping_add(t.a[i].wrapping_mul(e[i]));
                    if server {
                        v = v.wrapping_add(d[i].wrapping_mul(e[i]));
                    }
                    *z = z.wrapping_add(v);
                }
            }
            TripleShape::RowScale(MatDims { cols, .. }) => {
                for (i, row) in z.chunks_exact_mut(cols).enumerate() {
                    let (bi, ei) = (&t.b[i * cols..(i + 1) * cols], &e[i * cols..(i + 1) * cols]);
                    for j in 0..cols {
                        let mut v = d[i]
                            .wrapping_mul(bi[j])
                            .wrapping_add(t.a[i].wrapping_mul(ei[j]));
                        if server {
                            v = v.wrapping_add(d[i].wrapping_mul(ei[j]));
                        }
                        row[j] = row[j].wrapping_add(v);
                    }
                }
            }
        }
        if server {
            z.iter_mut().for_each(|v| *v = v.wrapping_add(half));
        }
        outputs.push(z.len());
        flat.extend(z);
    }
    let y = trunc_cast(
        sess,
        &flat,
        Ring::R64,
        Ring::R64,
        shift,
        TruncKind::KnownMsb,
    )?;
    let mut at = 0;
    Ok(outputs
        .into_iter()
        .map(|n| {
            at += n;
            y[at - n..at].to_vec()
        })
        .collect())
}

/// Exact cost of [`triple_products`] on triples of these shapes.
pub fn triple_products_cost(shapes: &[TripleShape], shift: u32) -> Result<Cost> {
    let opened: usize = shapes.iter().map(TripleShape::opened_words).sum();
    let outputs: usize = shapes.iter().map(TripleShape::outputs).sum();
    let bytes = 8 * opened as u64;
    let open = Cost {
        server_bytes: bytes,
        client_bytes: bytes,
        rounds: 1,
        first: Side::Both,
        last: Side::Both,
    };
    Ok(open.then(truncate_cost(outputs, Ring::R64, Ring::R64, shift)?))
}

/// COTs [`triple_products`] draws (its truncation's).
pub fn triple_products_cots(shapes: &[TripleShape], shift: u32) -> Result<CotDemand> {
    let outputs: usize = shapes.iter().map(TripleShape::outputs).sum();
    truncate_cots(outputs, Ring::R64, Ring::R64, shift)
}
