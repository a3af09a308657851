//! MPI as wgrad's [`Communicator`] (feature `mpi`): OpenMPI or any MPI through the `mpi`
//! crate. Start the program with `mpirun -np N`; [`run`] initialises MPI, hands the closure
//! the world, and makes sure that a rank which fails stops every rank.

use ::mpi::collective::SystemOperation;
use ::mpi::environment::Threading;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use super::{Communicator, Reduction};
use crate::{Error, Result};

/// Elements per MPI call: MPI counts in `int`s.
const CHUNK: usize = 1 << 28;

/// `MPI_COMM_WORLD`: every rank that `mpirun` started. A handle, cheap to copy; MPI stays
/// initialised while [`run`] runs. Calls from several threads must not overlap (MPI is
/// initialised as `MPI_THREAD_SERIALIZED`).
#[derive(Clone, Copy, Debug)]
pub struct MpiWorld {
    rank: usize,
    size: usize,
}

impl MpiWorld {
    fn comm() -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    /// Stops every rank of the job with exit code `code` (`MPI_Abort`).
    pub fn abort(&self, code: i32) -> ! {
        Self::comm().abort(code)
    }
}

fn op(r: Reduction) -> SystemOperation {
    match r {
        Reduction::Sum => SystemOperation::sum(),
        Reduction::Min => SystemOperation::min(),
        Reduction::Max => SystemOperation::max(),
    }
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_f32(&self, values: &mut [f32]) -> Result<()> {
        let comm = Self::comm();
        for chunk in values.chunks_mut(CHUNK) {
            let send = chunk.to_vec();
            comm.all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
        Ok(())
    }
    fn all_reduce_f64(&self, values: &mut [f64], r: Reduction) -> Result<()> {
        let comm = Self::comm();
        for chunk in values.chunks_mut(CHUNK) {
            let send = chunk.to_vec();
            comm.all_reduce_into(&send[..], chunk, op(r));
        }
        Ok(())
    }
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        let comm = Self::comm();
        for chunk in values.chunks_mut(CHUNK) {
            comm.process_at_rank(root as i32).broadcast_into(chunk);
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Self::comm().barrier();
        Ok(())
    }
}

/// Runs `main` on every rank of an MPI job and returns when it succeeded on this rank.
///
/// MPI is initialised first and finalised after. A rank whose `main` returns an error, or
/// panics, prints it (naming the rank) and calls `MPI_Abort`, which ends every rank of the
/// job with exit code 1: the others never wait forever in a collective for a rank that is
/// gone. A rank killed by a signal ends the job through `mpirun`.
///
/// # Errors
/// MPI was initialised already (`Error::Invalid`); the closure's errors never return.
pub fn run<F>(main: F) -> Result<()>
where
    F: FnOnce(MpiWorld) -> Result<()>,
{
    let Some((universe, _)) = ::mpi::initialize_with_threading(Threading::Serialized) else {
        return Err(Error::Invalid(
            "wgrad::distributed::mpi::run: MPI is initialised already".into(),
        ));
    };
    let comm = universe.world();
    let world = MpiWorld {
        rank: comm.rank() as usize,
        size: comm.size() as usize,
    };
    let rank = world.rank;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("rank {rank}: panicked; stopping every rank (MPI_Abort)");
        previous(info);
        SimpleCommunicator::world().abort(1);
    }));
    if let Err(e) = main(world) {
        eprintln!("rank {rank}: {e}; stopping every rank (MPI_Abort)");
        world.abort(1);
    }
    drop(universe);
    // MPI is finalised: a later panic must not call MPI_Abort.
    drop(std::panic::take_hook());
    Ok(())
}
