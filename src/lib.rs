//! sparewatch: the redundancy engine, scheduler and outputs.
